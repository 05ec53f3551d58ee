"""Page previews: PNG images rendered on the server, cached on disk per revision.

The cache lives under ``[storage] previews/<revision sha256>/``; a revision's
bytes never change, so neither do its images, and the folder is safe to delete.
The page count file is written last: its presence means the set is complete.

A document page needs only the count (:func:`page_count`); the images are
rendered when the browser first asks for one (:func:`page_file`), so a new
revision's first view is not held up by rendering it.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from esign.errors import NotFound
from esign.signing.layout import count_pages, render_previews

WIDTH_PX = 1000

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _folder(root: Path, sha256: str) -> Path:
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise NotFound("This page does not exist")
    return root / sha256


def _write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


#: page counts already read: (root, sha256) -> pages; a revision never changes (its images
#: may still be missing: the count file tells)
_counts: dict[tuple[Path, str], int] = {}
_COUNTS_MAX = 50_000


def ensure(root: Path, sha256: str, load_pdf: Callable[[], bytes]) -> int:
    """Render the revision's pages once; returns how many there are."""
    known = _counts.get((root, sha256))
    if known is not None and (root / sha256 / "pages").exists():
        return known
    folder = _folder(root, sha256)
    count_file = folder / "pages"
    if count_file.exists():
        return _remember(root, sha256, int(count_file.read_text()))
    with _locks_guard:
        lock = _locks.setdefault(sha256, threading.Lock())
    with lock:
        if count_file.exists():
            return int(count_file.read_text())
        images = render_previews(load_pdf(), WIDTH_PX)
        folder.mkdir(parents=True, exist_ok=True)
        for n, png in enumerate(images, start=1):
            _write(folder / f"page-{n}.png", png)
        _write(count_file, str(len(images)).encode())
    with _locks_guard:
        _locks.pop(sha256, None)
    return _remember(root, sha256, len(images))


def page_count(root: Path, sha256: str, load_pdf: Callable[[], bytes]) -> int:
    """How many pages the revision has: from the cache, else read from the PDF (not rendered)."""
    known = _counts.get((root, sha256))
    if known is not None:
        return known
    count_file = _folder(root, sha256) / "pages"
    if count_file.exists():
        return _remember(root, sha256, int(count_file.read_text()))
    return _remember(root, sha256, count_pages(load_pdf()))


def _remember(root: Path, sha256: str, count: int) -> int:
    if len(_counts) >= _COUNTS_MAX:
        _counts.clear()
    _counts[(root, sha256)] = count
    return count


def page_file(root: Path, sha256: str, n: int, load_pdf: Callable[[], bytes]) -> Path:
    count = ensure(root, sha256, load_pdf)
    if not 1 <= n <= count:
        raise NotFound("This page does not exist")
    return _folder(root, sha256) / f"page-{n}.png"
