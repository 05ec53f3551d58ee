"""SIGKILL a real ``esign serve`` at each point of a signing step; nothing is lost.

For each point, on SQLite and on PostgreSQL: the server dies there (it kills
itself at an ``ESIGN_FAULT_POINT``, or the test kills it while the device
signs), a new server starts on the same store, ``esign fsck`` finds no
problem, and the officer finishes the step by repeating what the browser
would: the same idempotency key, the same value. The document ends with
exactly one new revision, signed and valid, and the workflow moved once.

Each scenario has its own draft. To start fewer servers, the server that
finishes one scenario's step is already armed with the next scenario's fault
point when finishing does not pass through it (``REACHES``); were that wrong,
the finishing request would die and the test fail.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from esign.config import Settings
from esign.services.faults import POINTS
from esign.services.integrity import check_store

from .conftest import Browser, Device, Server, ServerGone, Store, fsck, inspect, seed

#: the device signs outside the server; the test kills the server meanwhile
WHILE_DEVICE_SIGNS = "device.signing"
PREPARE = frozenset(POINTS[:2])
COMPLETE = frozenset(POINTS[2:])
#: the points that finishing the step after each scenario passes through
REACHES = {
    "signing.prepare_before_commit": PREPARE | COMPLETE,  # a new request, then its completion
    "signing.after_prepare": COMPLETE,  # the same request, found by its idempotency key
    WHILE_DEVICE_SIGNS: COMPLETE,
    "signing.value_received": COMPLETE,
    "signing.before_commit": COMPLETE,
    "signing.after_commit": frozenset(),  # already completed: answered at once
}
#: an order in which most servers both finish one step and host the next fault
SCENARIOS = ("signing.after_commit", "signing.before_commit", "signing.after_prepare",
             "signing.prepare_before_commit", WHILE_DEVICE_SIGNS, "signing.value_received")


def test_scenarios_cover_every_fault_point() -> None:
    assert set(SCENARIOS) == set(POINTS) | {WHILE_DEVICE_SIGNS} == set(REACHES)


@dataclass
class Killed:
    """What the officer's browser and device hold when the server died."""

    point: str
    document_id: int
    key: str
    before: Store
    request_id: str | None = None
    value: bytes | None = None


def _inflict(point: str, document_id: int, server: Server, browser: Browser, device: Device, ctx) -> Killed:  # type: ignore[no-untyped-def]
    """Start the officer's step on a running server and have the server die at ``point``."""
    killed = Killed(point, document_id, f"submit-{document_id}", inspect(ctx, document_id))
    assert killed.before.revisions == 1 and killed.before.state == "draft" and not killed.before.requests
    if point in PREPARE:
        with pytest.raises(ServerGone):
            browser.create_request(document_id, killed.key)
        server.wait_killed()
        return killed
    created = browser.create_request(document_id, killed.key)
    assert created.status == 201 and created.body["status"] == "pending", created
    killed.request_id = created.body["id"]
    if point == WHILE_DEVICE_SIGNS:
        server.kill()
        killed.value = device.sign(created)  # the token finishes its work while the server is down
        return killed
    killed.value = device.sign(created)
    with pytest.raises(ServerGone):
        browser.complete(killed.request_id, killed.value)
    server.wait_killed()
    return killed


def _check_and_finish(killed: Killed, browser: Browser, device: Device, ctx, config: Path) -> tuple[bytes, int]:  # type: ignore[no-untyped-def]
    """On a new server: fsck, what the kill left, then the officer finishes the step."""
    report = fsck(config, signatures=False)
    found = re.search(r"(\d+) unreferenced blob", report)
    left = inspect(ctx, killed.document_id)
    committed = killed.point == "signing.after_commit"
    assert left.revisions == (2 if committed else 1), "a half revision or a lost one"
    assert left.state == ("advise" if committed else "draft")
    if killed.point == "signing.prepare_before_commit":
        assert not left.requests  # the request died with its transaction
    else:
        assert list(left.requests.values()) == (["completed"] if committed else ["pending"])

    request_id, value = killed.request_id, killed.value
    if request_id is None:  # the browser never got the request: it sends the same click again
        again = browser.create_request(killed.document_id, killed.key)
        assert again.status == 201 and again.body["status"] == "pending", again
        if killed.point == "signing.after_prepare":
            assert again.body["id"] in left.requests  # the same request, found by its key
        request_id, value = again.body["id"], device.sign(again)
    assert value is not None
    done = browser.complete(request_id, value)
    assert done.status == 200 and done.body["status"] == "completed", done
    assert done.body["revision_index"] == 1
    if committed:
        assert done.body["message"]  # "already completed": the value is not embedded twice
    repeat = browser.complete(request_id, value)  # as a browser that did not see the answer would
    assert repeat.status == 200 and repeat.body["revision_index"] == 1

    after = inspect(ctx, killed.document_id)
    assert after.revisions == 2 and after.state == "advise"
    assert list(after.requests.values()) == ["completed"]
    assert after.head.startswith(killed.before.head) and len(after.head) > len(killed.before.head)
    return after.head, int(found.group(1)) if found else 0


@pytest.mark.timeout(900)
def test_kill_at_each_signing_point_loses_nothing(served: tuple[Path, Settings], tmp_path: Path,
                                                  pdf_checks) -> None:  # type: ignore[no-untyped-def]
    config, settings = served
    ctx, document_ids = seed(settings, len(SCENARIOS))
    server = Server(config, tmp_path)
    browser = Browser(server)
    device = Device(ctx)
    heads: list[bytes] = []
    unreferenced = 0
    pending: Killed | None = None
    try:
        for point, document_id in zip(SCENARIOS, document_ids, strict=True):
            fault = point if point in POINTS else None
            if pending is not None and fault in REACHES[pending.point]:
                server.start()  # finishing the last step would pass this fault point: finish first
                head, unreferenced = _check_and_finish(pending, browser, device, ctx, config)
                heads.append(head)
                server.stop()
                pending = None
            server.start(fault=fault)
            if not browser.csrf:
                browser.login()  # once: the session survives every restart (the same secret key)
            if pending is not None:
                head, unreferenced = _check_and_finish(pending, browser, device, ctx, config)
                heads.append(head)
            pending = _inflict(point, document_id, server, browser, device, ctx)
        assert pending is not None
        server.start()
        head, unreferenced = _check_and_finish(pending, browser, device, ctx, config)
        heads.append(head)
        server.stop()

        assert server.kills == len(SCENARIOS) and len(heads) == len(SCENARIOS)
        for head in heads:
            statuses = pdf_checks.pyhanko(head)
            assert len(statuses) == 1 and all(s.bottom_line for s in statuses), statuses
        final = check_store(ctx)
        assert final.ok, final.problems
        assert final.revisions == 2 * len(SCENARIOS) and final.documents == len(SCENARIOS)
        fsck(config, subprocess_run=True)  # the command itself, in its own process, signatures verified
        print(f"\n{settings.database.url.split(':')[0]}: {server.kills} kills at {len(SCENARIOS)} points, "
              f"{server.starts} server starts, fsck clean after each; {final.revisions} revisions, "
              f"{unreferenced} unreferenced blob file(s) left by the kills")
    finally:
        server.stop()
        ctx.close()
