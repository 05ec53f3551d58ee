"""Hypothesis strategies that damage real PDFs the way hostile or broken files are damaged."""

from __future__ import annotations

import re

from hypothesis import strategies as st

HUGE = (b"99999999999999999999999999999999", b"-2147483649", b"4294967296", b"1e308", b"-0.0000000000001",
        b"18446744073709551616", b"340282366920938463463374607431768211456")

#: nested containers deeper than any real file
def _nesting(depth: int, kind: int) -> bytes:
    if kind == 0:
        return b"[" * depth + b"]" * depth
    if kind == 1:
        return b"<</A " * depth + b">>" * depth
    return b"[" * depth  # never closed


def _truncate(data: bytes, at: int, _blob: bytes, _n: int) -> bytes:
    return data[: at % max(len(data), 1)]


def _overwrite(data: bytes, at: int, blob: bytes, _n: int) -> bytes:
    i = at % max(len(data), 1)
    return data[:i] + blob + data[i + len(blob):]


def _insert(data: bytes, at: int, blob: bytes, _n: int) -> bytes:
    i = at % max(len(data), 1)
    return data[:i] + blob + data[i:]


def _huge_number(data: bytes, at: int, _blob: bytes, n: int) -> bytes:
    numbers = list(re.finditer(rb"(?<=[\s\[/<])\d+(?=[\s\]>/])", data))
    if not numbers:
        return data + HUGE[n % len(HUGE)]
    m = numbers[at % len(numbers)]
    return data[: m.start()] + HUGE[n % len(HUGE)] + data[m.end():]


def _deep_nesting(data: bytes, at: int, _blob: bytes, n: int) -> bytes:
    objects = list(re.finditer(rb"\d+ 0 obj\s*", data))
    nest = _nesting(200 + n * 37 % 20000, n % 3)
    if not objects:
        return nest + data
    m = objects[at % len(objects)]
    return data[: m.end()] + nest + b" " + data[m.end():]


def _break_xref(data: bytes, at: int, blob: bytes, n: int) -> bytes:
    choice = n % 4
    if choice == 0:  # the last startxref points somewhere else
        return re.sub(rb"startxref\s+\d+\s*%%EOF\s*$", b"startxref\n" + str(at % (len(data) * 2 + 1)).encode()
                      + b"\n%%EOF\n", data)
    if choice == 1:  # xref table rows damaged
        i = data.rfind(b"xref")
        return data if i < 0 else data[: i + 5] + blob + data[i + 5 + len(blob):]
    if choice == 2:  # no trailer at all
        return data.replace(b"trailer", b"tr" + blob[:4] + b"iler")
    return data[: max(data.rfind(b"startxref"), 0)]  # cut just before startxref


def _stream_length(data: bytes, at: int, _blob: bytes, n: int) -> bytes:
    lengths = list(re.finditer(rb"/Length\s+\d+", data))
    if not lengths:
        return data
    m = lengths[at % len(lengths)]
    return data[: m.start()] + b"/Length " + HUGE[n % len(HUGE)] + data[m.end():]


def _append_update(data: bytes, at: int, blob: bytes, n: int) -> bytes:
    """A fake incremental update: a new object and a trailer pointing into nowhere."""
    return (data + b"\n99 0 obj\n" + blob + b"\nendobj\nxref\n0 1\n0000000000 65535 f \ntrailer\n<</Size "
            + HUGE[n % len(HUGE)] + b"/Prev " + str(at).encode() + b">>\nstartxref\n" + str(len(data)).encode()
            + b"\n%%EOF\n")


MUTATIONS = (_truncate, _overwrite, _insert, _huge_number, _deep_nesting, _break_xref, _stream_length,
             _append_update)


@st.composite
def damaged(draw: st.DrawFn, seeds: tuple[bytes, ...]) -> bytes:
    """One to three mutations of one of ``seeds``."""
    data = draw(st.sampled_from(seeds))
    for _ in range(draw(st.integers(1, 3))):
        mutation = draw(st.sampled_from(MUTATIONS))
        data = mutation(data, draw(st.integers(0, 1 << 24)), draw(st.binary(min_size=1, max_size=64)),
                        draw(st.integers(0, 1 << 16)))
    return data


def pdf_like(seeds: tuple[bytes, ...]) -> st.SearchStrategy[bytes]:
    """Mostly damaged copies of real files, sometimes plain noise with a PDF header."""
    return st.one_of(damaged(seeds), damaged(seeds), damaged(seeds),
                     st.binary(max_size=2048).map(lambda b: b"%PDF-1.7\n" + b))
