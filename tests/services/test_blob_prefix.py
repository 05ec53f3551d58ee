"""The blob store checks that a new revision extends the stored head without reading it whole."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from esign.errors import IntegrityError
from esign.services.blobs import BlobStore


@pytest.fixture
def stored(tmp_path: Path) -> tuple[BlobStore, str, bytes]:
    store = BlobStore(tmp_path / "blobs")
    head = os.urandom(10_000)
    return store, store.write(head), head


def test_a_revision_that_appends_to_the_head_extends_it(stored) -> None:  # type: ignore[no-untyped-def]
    store, name, head = stored
    assert store.is_prefix_of(name, head + b"\n% update\n", chunk=4096)
    assert store.is_prefix_of(name, head + b"x", chunk=len(head))


def test_equal_shorter_or_changed_bytes_do_not_extend_the_head(stored) -> None:  # type: ignore[no-untyped-def]
    store, name, head = stored
    assert not store.is_prefix_of(name, head, chunk=4096)  # nothing appended
    assert not store.is_prefix_of(name, head[:-1], chunk=4096)
    for at in (0, 4095, 4096, 9_999):  # first byte, either side of a chunk boundary, last byte
        changed = bytearray(head + b"\n% update\n")
        changed[at] ^= 0xFF
        assert not store.is_prefix_of(name, bytes(changed), chunk=4096)


def test_a_stored_file_that_no_longer_matches_its_hash_is_reported(stored) -> None:  # type: ignore[no-untyped-def]
    store, name, head = stored
    path = store.path(name)
    tampered = bytearray(head)
    tampered[5000] ^= 0x01
    path.chmod(0o644)
    path.write_bytes(bytes(tampered))
    with pytest.raises(IntegrityError, match="does not match its hash"):
        store.is_prefix_of(name, bytes(tampered) + b"\n% update\n", chunk=4096)
    path.unlink()
    with pytest.raises(IntegrityError, match="missing"):
        store.is_prefix_of(name, head + b"x")
