"""Faster, behaviour-identical replacements for two of pyHanko's hot spots.

1. ``generic.read_hex_string_from_stream`` reads a hex string one byte at a
   time in Python; a signature's /Contents (16–64 KiB of hex digits) took
   tens of milliseconds. The replacement finds the closing ``>`` in the
   buffer, strips PDF whitespace and decodes in C. Whenever the string holds
   anything else (a comment, a stray character, no closing bracket before the
   end of the file) it rewinds and calls pyHanko's own routine, so every
   error and corner case is pyHanko's.
2. ``general.match_issuer_serial`` compares the issuer names (asn1crypto's
   stringprep comparison, slow) before the serial numbers; a CMS carrying
   the whole chain compared every certificate's issuer. The replacement
   compares the serial first: ``a and b`` equals ``b and a`` for these
   side-effect-free tests, and a failed name comparison already meant False.

``install()`` is idempotent; tests/verify/test_fastparse.py checks both
against the originals on generated and hostile inputs.
"""

from __future__ import annotations

import binascii
import contextlib
from collections.abc import Iterator
from typing import Any

from pyhanko.pdf_utils import generic, misc
from pyhanko.sign import general

_ORIGINAL_HEX = generic.read_hex_string_from_stream
_ORIGINAL_MATCH = general.match_issuer_serial
_WHITESPACE = misc.PDF_WHITESPACE  # b" \n\r\t\f\x00", what read_non_whitespace skips
_FIRST_READ = 512


def read_hex_string_from_stream(stream: Any) -> Any:
    """pyHanko's hex string reader, decoding in C; falls back to it on anything unusual."""
    start = stream.tell()
    size = _FIRST_READ
    while True:
        buf = stream.read(size)
        end = buf.find(b">", 1)  # byte 0 is the opening "<", which pyHanko skips unread
        if end >= 0 or len(buf) < size:
            break
        stream.seek(start)
        size *= 8
    if end >= 0:
        body = buf[1:end].translate(None, _WHITESPACE)
        if len(body) % 2:
            body += b"0"  # pyHanko pads an odd number of digits with a trailing 0
        try:
            value = binascii.unhexlify(body)
        except (binascii.Error, ValueError):
            pass  # a non-hex byte, "%" (a comment to pyHanko): pyHanko decides
        else:
            stream.seek(start + end + 1)
            return generic.pdf_string(value)
    stream.seek(start)
    return _ORIGINAL_HEX(stream)


_MATCHES: dict[tuple[bytes, bytes], bool] = {}
_MATCHES_LIMIT = 4096


def match_issuer_serial(expected_issuer_serial: Any, cert: Any) -> bool:
    """pyHanko's issuer-and-serial match, with the cheap serial comparison first.

    The name comparison is a pure function of the two encodings, so its answer
    is remembered (the same signers' certificates recur across an archive).
    """
    if expected_issuer_serial["serial_number"] != cert["tbs_certificate"]["serial_number"]:
        return False
    key = (expected_issuer_serial.dump(), cert.dump())
    hit = _MATCHES.get(key)
    if hit is None:
        hit = bool(_ORIGINAL_MATCH(expected_issuer_serial, cert))
        if len(_MATCHES) >= _MATCHES_LIMIT:
            _MATCHES.clear()
        _MATCHES[key] = hit
    return hit


def install() -> None:
    generic.read_hex_string_from_stream = read_hex_string_from_stream
    general.match_issuer_serial = match_issuer_serial


def uninstall() -> None:
    """Restore pyHanko's originals (for the equivalence tests)."""
    generic.read_hex_string_from_stream = _ORIGINAL_HEX
    general.match_issuer_serial = _ORIGINAL_MATCH


@contextlib.contextmanager
def pyhanko_originals() -> Iterator[None]:
    """Run a block with pyHanko's own routines (the benchmarks measure raw pyHanko so)."""
    uninstall()
    try:
        yield
    finally:
        install()


__all__ = [
    "install",
    "match_issuer_serial",
    "pyhanko_originals",
    "read_hex_string_from_stream",
    "uninstall",
]
