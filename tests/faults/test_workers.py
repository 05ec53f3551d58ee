"""``esign serve`` with several processes: one officer's requests land on any of them.

A session made by one process is honoured by the others, a signing step
prepared by one is completed by another, a process that dies is replaced
while the others answer, and stopping the server stops every process.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from esign.config import Settings, load_settings
from esign.services.integrity import check_store

from .conftest import Browser, Device, Server, fsck, inspect, seed, write_config

WORKERS = 2


def children(pid: int) -> set[int]:
    return {int(c) for task in Path(f"/proc/{pid}/task").iterdir()
            for c in (task / "children").read_text().split()}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"


def wait_for(condition, seconds: float = 30) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.timeout(300)
def test_several_processes_serve_one_officer(tmp_path: Path, dev_pki: Path, db_url: str, pki_services,  # type: ignore[no-untyped-def]
                                             pdf_checks) -> None:
    config = write_config(tmp_path, dev_pki, db_url, pki_services.port, workers=WORKERS)
    settings: Settings = load_settings(config, env={})
    assert settings.server.workers == WORKERS
    ctx, (document_id,) = seed(settings, 1)
    server = Server(config, tmp_path)
    try:
        server.start()
        assert server.proc is not None
        assert wait_for(lambda: len(children(server.proc.pid)) == WORKERS), children(server.proc.pid)
        workers = children(server.proc.pid)

        browser = Browser(server)
        browser.login()
        # every request is a new connection (urllib keeps none open), taken by whichever process
        # accepts it first: all of them must know the session the first one made
        for _ in range(12):
            status, page = browser.get("/")
            assert status == 200 and 'name="csrf-token"' in page and "/logout" in page

        # a process dies: a new one takes its place, the session still holds there
        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        assert wait_for(lambda: victim not in children(server.proc.pid)
                        and len(children(server.proc.pid)) == WORKERS)
        replaced = children(server.proc.pid) - workers
        assert len(replaced) == 1
        status, page = browser.get("/")
        assert status == 200 and "/logout" in page

        # one signing step, prepared and completed wherever the requests land
        device = Device(ctx)
        created = browser.create_request(document_id, "workers-test")
        assert created.status == 201 and created.body["status"] == "pending", created
        done = browser.complete(created.body["id"], device.sign(created))
        assert done.status == 200 and done.body["status"] == "completed", done
        after = inspect(ctx, document_id)
        assert after.revisions == 2 and after.state == "advise"
        statuses = pdf_checks.pyhanko(after.head)
        assert len(statuses) == 1 and statuses[0].bottom_line

        # stopping the server stops every process
        all_pids = children(server.proc.pid)
        server.stop()
        assert server.proc.returncode == 0, server.log.read_text()[-3000:]
        assert wait_for(lambda: not any(alive(p) for p in all_pids), 10)
        report = check_store(ctx)
        assert report.ok, report.problems
        fsck(config)
    finally:
        server.stop()
        ctx.close()
