"""Content-addressed storage of revision bytes.

A blob's file is written and fsynced under its sha256 *before* the database
transaction that refers to it commits: a committed row always has its bytes,
and a crash can leave at most an unreferenced file, which ``esign fsck``
reports. Files are never rewritten: equal bytes have one name.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from sqlalchemy.orm import Session

from esign.errors import IntegrityError, NotFound
from esign.models import Blob


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise NotFound("No stored file has the name %(name)s", name=sha256[:64])
        return self.root / sha256[:2] / sha256

    def write(self, data: bytes) -> str:
        """Store ``data`` durably and return its sha256 (idempotent)."""
        digest = sha256_hex(data)
        target = self.path(digest)
        if target.exists():
            return digest
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return digest

    def read(self, sha256: str, *, check: bool = True) -> bytes:
        try:
            data = self.path(sha256).read_bytes()
        except FileNotFoundError:
            raise IntegrityError("Stored file %(name)s… is missing from the blob store", name=sha256[:12]) from None
        if check and sha256_hex(data) != sha256:
            raise IntegrityError("Stored file %(name)s… does not match its hash", name=sha256[:12])
        return data

    def is_prefix_of(self, sha256: str, data: bytes, *, chunk: int = 1 << 20) -> bool:
        """Whether the stored file is a proper prefix of ``data`` (and still matches its hash).

        The file is compared as it is read, a chunk at a time, instead of being
        read whole: for a 10 MB document that is one copy less in memory.
        """
        path = self.path(sha256)
        try:
            size = path.stat().st_size
            handle = path.open("rb")
        except FileNotFoundError:
            raise IntegrityError("Stored file %(name)s… is missing from the blob store", name=sha256[:12]) from None
        if size >= len(data):
            handle.close()
            return False
        view = memoryview(data)
        hasher = hashlib.sha256()
        buffer = bytearray(chunk)
        offset = 0
        with handle:
            while (n := handle.readinto(buffer)) > 0:
                if offset + n > size or view[offset : offset + n] != memoryview(buffer)[:n]:
                    return False
                hasher.update(memoryview(buffer)[:n])
                offset += n
        if offset != size or hasher.hexdigest() != sha256:
            raise IntegrityError("Stored file %(name)s… does not match its hash", name=sha256[:12])
        return True

    def names(self) -> set[str]:
        if not self.root.exists():
            return set()
        return {p.name for p in self.root.glob("??/*") if not p.name.startswith(".")}


def store(session: Session, blobs: BlobStore, data: bytes) -> str:
    """Write ``data`` to the store and add its row to the session's transaction."""
    digest = blobs.write(data)
    if session.get(Blob, digest) is None:
        session.add(Blob(sha256=digest, size=len(data)))
        session.flush()
    return digest
