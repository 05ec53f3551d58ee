"""The signed revision next to the current file: page images where they differ.

A signature covers the file up to the end of its ByteRange; those bytes are the
revision the signer saw. When later revisions changed what the pages show, the
auditor sees both renderings side by side.

The file is untrusted (an upload), so pdfium renders it in a child process
with a time and memory limit; a file that cannot be rendered in time simply
gets no comparison (the verdict does not depend on it).
"""

from __future__ import annotations

import base64
import contextlib
import multiprocessing as mp
import resource
from dataclasses import dataclass, replace
from typing import Any

from esign.verify import Report
from esign.web.verdicts import FIELD_NAMES, label, person

#: pages rendered per revision; pages beyond are compared by nobody (the report says so)
MAX_PAGES = 12
#: differing pages shown side by side
MAX_SHOWN = 4
WIDTH_PX = 640
TIMEOUT_S = 20.0
MEMORY_MB = 768


@dataclass(frozen=True)
class PagePair:
    page: int
    #: data: URIs of PNG images (the page CSP allows img-src data:); "" where the page is missing
    signed: str
    current: str


@dataclass(frozen=True)
class Comparison:
    """The last signed revision against the whole file."""

    field: str
    signer: str | None
    revision: int | None
    signed_size: int
    size: int
    pages: tuple[PagePair, ...] = ()
    #: pages that differ, of which ``pages`` shows the first MAX_SHOWN
    differing: int = 0
    #: rendered and identical: the later revisions do not change what the pages show
    same_look: bool = False
    #: the file could not be rendered within the limits
    failed: bool = False
    truncated: bool = False


def _render_child(conn: Any, pdf: bytes, width: int, max_pages: int) -> None:
    limit = MEMORY_MB * 1024 * 1024
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        import io

        import pypdfium2 as pdfium

        doc = pdfium.PdfDocument(pdf)
        images = []
        try:
            doc.init_forms()
            count = len(doc)
            for ix in range(min(count, max_pages)):
                page = doc[ix]
                try:
                    bitmap = page.render(scale=width / page.get_width(), may_draw_forms=True)
                    buf = io.BytesIO()
                    bitmap.to_pil().save(buf, format="PNG")
                    images.append(buf.getvalue())
                finally:
                    page.close()
        finally:
            doc.close()
        conn.send((count, images))
    except BaseException:  # noqa: BLE001 - the parent only needs to know it failed
        conn.send(None)
    finally:
        conn.close()


def render_isolated(pdf: bytes, width: int = WIDTH_PX, max_pages: int = MAX_PAGES) -> tuple[int, list[bytes]] | None:
    """(page count, PNG of the first ``max_pages`` pages), or None if it failed or took too long."""
    ctx = mp.get_context("forkserver")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_render_child, args=(child, pdf, width, max_pages), daemon=True)
    proc.start()
    child.close()
    try:
        if not parent.poll(TIMEOUT_S):
            return None
        try:
            result = parent.recv()
        except (EOFError, OSError):
            return None
    finally:
        parent.close()
        if proc.is_alive():
            proc.kill()
        proc.join(5)
    return result  # type: ignore[no-any-return]


def _uri(png: bytes | None) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii") if png else ""


def last_signed_revision(report: Report) -> tuple[Any, int] | None:
    """The signature whose revision ends last, and that end, if the file goes on after it."""
    best = None
    for s in report.signatures:
        if s.kind == "timestamp" or len(s.byte_range) != 4:
            continue
        end = s.byte_range[2] + s.byte_range[3]
        if best is None or end > best[1]:
            best = (s, end)
    if best is None or best[1] >= report.size:
        return None
    return best


def compare(data: bytes, report: Report) -> Comparison | None:
    """Pages of the last signed revision against the current file, where the file changed after it."""
    found = last_signed_revision(report)
    if found is None or len(data) != report.size:
        return None
    signature, end = found
    base = Comparison(field=label(FIELD_NAMES, signature.field), signer=person(signature.signer)[0],
                      revision=signature.revision,
                      signed_size=end, size=len(data))
    signed = render_isolated(data[:end])
    current = render_isolated(data)
    if signed is None or current is None:
        return replace(base, failed=True)
    (signed_count, signed_pages), (current_count, current_pages) = signed, current
    pairs = []
    for ix in range(max(len(signed_pages), len(current_pages))):
        a = signed_pages[ix] if ix < len(signed_pages) else None
        b = current_pages[ix] if ix < len(current_pages) else None
        if a != b:
            pairs.append(PagePair(ix + 1, _uri(a), _uri(b)))
    return replace(base, pages=tuple(pairs[:MAX_SHOWN]), differing=len(pairs),
                   same_look=not pairs and signed_count == current_count,
                   truncated=max(signed_count, current_count) > MAX_PAGES)
