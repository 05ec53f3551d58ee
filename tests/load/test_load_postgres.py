"""A bounded concurrent load on a real ``esign serve`` (two processes) over PostgreSQL.

Many signed-in people act on the same and on different documents at once:
double submits of one form (same idempotency key), a second browser tab (a new
key), advisers signing the same memo, an adviser returning it meanwhile, the
chair approving while returning from another tab, repeated completion of one
signature request by the desktop agent, plain page loads. Afterwards: no
answer was a 500, every chain is one chain (each revision a prefix of the
next), every successful signing answer has exactly one revision and step, every
refused request left nothing, and ``esign fsck`` passes.

Figures are printed and written to ``$ESIGN_LOAD_REPORT`` when set.
``ESIGN_LOAD_DOCUMENTS`` and ``ESIGN_LOAD_REPEAT`` make the load larger.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import select

from esign.models import (
    Certificate,
    Document,
    DocumentVersion,
    IdempotencyKey,
    Revision,
    SignatureRequest,
    StepRecord,
    User,
    WorkflowInstance,
)
from esign.services.context import Context
from esign.services.demo import EXAMPLE_MEMO, seed_people
from esign.services.migrate import upgrade
from esign.signing.backend import SignRequest
from esign.signing.softkey import SoftkeyBackend
from tests.conftest import DEMO_PEOPLE, ROOT, _truncate_postgres, make_settings

from .client import Answer, Person, Recorder

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(600)]

DOCUMENTS = int(os.environ.get("ESIGN_LOAD_DOCUMENTS", "5"))
#: how many times each form is sent with one key (a double click and more)
REPEAT = int(os.environ.get("ESIGN_LOAD_REPEAT", "4"))
#: how many completions of one signature request are sent at once
COMPLETIONS = 4
THREADS = 24
#: the whole load must be answered within this (a guard against hangs on a busy machine)
BOUND_S = 240

OFFICER, ADVISERS, CHAIR, CLERK = "nguyenvana", ("tranthibinh", "lequangcuong", "vominhduc"), \
    "nguyenthiquynhtrieu", "hoangvanem"
#: signs through the JSON API with a token the server cannot reach (the desktop agent)
AGENT_ADVISER = "vominhduc"
DOC_URL = re.compile(r"/documents/(\d+)$")
ESIGN = str(Path(sys.executable).with_name("esign"))
STATE_CHANGING = {"compose", "upload", "sign", "act", "api-create", "api-complete"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _toml(value: object) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise TypeError(value)


class Server:
    def __init__(self, base: str, config: Path, log: Path, ctx: Context, process: subprocess.Popen[bytes]) -> None:
        self.base, self.config, self.log, self.ctx, self.process = base, config, log, ctx, process

    def esign(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([ESIGN, "--config", str(self.config), *args],
                              capture_output=True, text=True, timeout=300, env=_env(), check=False)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESIGN_")}
    env["ESIGN_SECRET_KEY"] = secrets.token_urlsafe(32)
    env["ESIGN_SOFTKEY_PASSPHRASE"] = os.environ.get("ESIGN_SOFTKEY_PASSPHRASE", "esign-dev")
    return env


@pytest.fixture
def server(tmp_path: Path, dev_pki: Path, postgres_url: str) -> Iterator[Server]:
    """``esign serve`` in its own process on a fresh PostgreSQL database with the demo ward."""
    _truncate_postgres(postgres_url)
    port = _free_port()
    tables: dict[str, dict[str, object]] = {
        "app": {"environment": "test", "base_url": f"http://127.0.0.1:{port}"},
        "server": {"host": "127.0.0.1", "port": port, "workers": 2, "threads": 4},
        "database": {"url": postgres_url},
        "storage": {"blobs": str(tmp_path / "blobs"), "previews": str(tmp_path / "previews")},
        "workflows": {"definitions": str(ROOT / "workflows")},
        "pki": {"trust_roots": [str(dev_pki / "root.cert.pem")], "dev_dir": str(dev_pki)},
        "signing": {"backends": ["softkey", "agent"], "seal_backend": "softkey"},
    }
    config = tmp_path / "config.toml"
    config.write_text("".join(f"[{t}]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in kv.items()) + "\n"
                              for t, kv in tables.items()), encoding="utf-8")
    settings = make_settings(tmp_path, dev_pki, postgres_url, **{k: v for k, v in tables.items()
                                                                 if k in ("app", "server")})
    upgrade(settings)
    ctx = Context.create(settings)
    seed_people(ctx, DEMO_PEOPLE)
    with ctx.db.session() as session:
        # this adviser's token is on the desktop: the server prepares, the agent signs
        user = session.scalar(select(User).where(User.username == AGENT_ADVISER))
        cert = session.scalar(select(Certificate).where(Certificate.user_id == user.id, Certificate.device == "token"))
        cert.backend = "agent"
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen([ESIGN, "--config", str(config), "serve"],
                                   stdout=out, stderr=subprocess.STDOUT, env=_env(), cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"esign serve did not start: {log.read_text(errors='replace')[-3000:]}")
                time.sleep(0.2)
        yield Server(base, config, log, ctx, process)
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        ctx.close()


def _burst(pool: ThreadPoolExecutor, jobs: list[Callable[[], object]]) -> list[object]:
    """Run ``jobs`` at once and wait for all of them; a job's exception fails the test."""
    return [f.result() for f in [pool.submit(job) for job in jobs]]


def _key() -> str:
    return secrets.token_urlsafe(16)


def test_concurrent_officers_on_postgres_lose_nothing(server: Server, dev_pki: Path) -> None:
    ctx = server.ctx
    recorder = Recorder()
    people = {name: Person(server.base, name, recorder) for name in (OFFICER, *ADVISERS, CHAIR, CLERK)}
    for p in people.values():
        p.log_in()
    officer, chair, clerk = people[OFFICER], people[CHAIR], people[CLERK]
    device = SoftkeyBackend(dev_pki, os.environ.get("ESIGN_SOFTKEY_PASSPHRASE", "esign-dev"))
    with ctx.db.session() as session:
        agent_credential = session.scalar(select(Certificate.credential).join(User).where(
            User.username == AGENT_ADVISER, Certificate.device == "token"))

    def sign(person: Person, document_id: int, action: str, key: str, **fields: object) -> Callable[[], Answer]:
        return lambda: person.post_form(f"/documents/{document_id}/sign",
                                        {"action": action, "idempotency_key": key, **fields},
                                        what="sign", key=key, document_id=document_id)

    def act(person: Person, document_id: int, action: str, key: str, comment: str) -> Callable[[], Answer]:
        return lambda: person.post_form(f"/documents/{document_id}/act",
                                        {"action": action, "idempotency_key": key, "comment": comment},
                                        what="act", key=f"{key}-{action}", document_id=document_id)

    def browse(person: Person, document_id: int) -> list[Callable[[], Answer]]:
        jobs = [lambda: person.get("/"), lambda: person.get(f"/documents/{document_id}", document_id=document_id)]
        if person.username in (OFFICER, ADVISERS[0], CHAIR):  # the page images (rendered once per revision)
            jobs.append(lambda: person.get(f"/documents/{document_id}/pages/1.png", document_id=document_id))
        return jobs

    def agent_signs(document_id: int) -> None:
        """The desktop agent: the request twice at once, the tbs signed, the value sent four times at once."""
        me, key = people[AGENT_ADVISER], _key()
        body = {"action": "advise", "device": "token", "comment": "Đồng ý (token)", "idempotency_key": key}
        with ThreadPoolExecutor(REPEAT) as inner:
            created = _burst(inner, [lambda: me.post_json(f"/api/documents/{document_id}/signature-requests", body,
                                                          what="api-create", key=key, document_id=document_id)
                                     for _ in range(REPEAT)])
            pending = [a for a in created if a.status == 201]
            if not pending:
                return
            request = pending[0].json()
            assert {a.json()["id"] for a in pending} == {request["id"]}
            value = device.sign(SignRequest(credential=agent_credential, tbs=base64.b64decode(request["tbs"]),
                                            md_algorithm=request["md_algorithm"], mechanism=request["mechanism"],
                                            label="load")).signature
            payload = {"signature": base64.b64encode(value).decode()}
            _burst(inner, [lambda: me.post_json(f"/api/signature-requests/{request['id']}/complete", payload,
                                                what="api-complete", key=request["id"], document_id=document_id)
                           for _ in range(COMPLETIONS)])

    started = time.perf_counter()
    with ThreadPoolExecutor(THREADS) as pool:
        # 1. the officer composes N memos and uploads one PDF, each form sent REPEAT times at once
        keys = [_key() for _ in range(DOCUMENTS)]
        jobs: list[Callable[[], object]] = []
        for i, key in enumerate(keys):
            fields = {"idempotency_key": key, "doc_type": "TTr", "title": f"{EXAMPLE_MEMO.title} ({i + 1})",
                      "addressee": EXAMPLE_MEMO.addressee, "body": EXAMPLE_MEMO.body, "recipients": "Như trên;"}
            jobs += [lambda f=fields, k=key: officer.post_form("/documents/new", f, what="compose", key=k)] * REPEAT
        from esign.signing import layout
        from tests.load.test_idempotency import original_pdf

        pdf, upload_key = original_pdf(ctx), _key()
        assert layout.check_pdf(pdf, 1 << 24)
        jobs += [lambda: officer.post_form("/documents/upload", {"idempotency_key": upload_key, "doc_type": "BC",
                                                                  "title": "Báo cáo tải lên"},
                                           files={"file": ("bao-cao.pdf", pdf)}, what="upload", key=upload_key)]
        jobs += [lambda: officer.get("/")] * 4
        answers = [a for a in _burst(pool, jobs) if isinstance(a, Answer) and a.what in ("compose", "upload")]
        by_key: dict[str, set[int]] = defaultdict(set)
        for a in answers:
            assert a.status == 302, (a.what, a.status, a.body[:300])
            by_key[a.key].add(int(DOC_URL.search(a.location).group(1)))
        assert all(len(ids) == 1 for ids in by_key.values()), by_key
        document_ids = sorted(next(iter(by_key[k])) for k in keys)
        uploaded = next(iter(by_key[upload_key]))

        # 2. each draft is signed and sent to the three advisers: REPEAT clicks plus a second tab
        jobs = []
        for d in [*document_ids, uploaded]:
            key = _key()
            jobs += [sign(officer, d, "submit", key, advisers=list(ADVISERS))] * REPEAT
            jobs += [sign(officer, d, "submit", _key(), advisers=list(ADVISERS))]
            jobs += browse(officer, d)
        _burst(pool, jobs)

        # 3. the advisers sign the same memos at once; on the last two one of them returns it meanwhile
        returned = set(document_ids[-2:])
        jobs = []
        for d in [*document_ids, uploaded]:
            for name in ADVISERS[:2]:
                if name == ADVISERS[1] and d in returned:
                    key = _key()
                    jobs += [act(people[name], d, "return", key, "Đề nghị bổ sung số liệu")] * REPEAT
                else:
                    key = _key()
                    jobs += [sign(people[name], d, "advise", key, comment=f"{name}: đồng ý")] * REPEAT
                    jobs += [sign(people[name], d, "advise", _key(), comment=f"{name}: đồng ý (tab 2)")]
                jobs += browse(people[name], d)
            jobs += [lambda d=d: agent_signs(d)]
        _burst(pool, jobs)

        # 4. the chair approves; on every other memo she also returns it from another tab at the same time
        jobs = []
        for i, d in enumerate([*document_ids, uploaded]):
            key = _key()
            jobs += [sign(chair, d, "approve", key)] * REPEAT
            if i % 2 == 0:
                jobs += [act(chair, d, "return", _key(), "Chưa đủ căn cứ")] * REPEAT
            else:
                jobs += [sign(chair, d, "approve", _key())]
            jobs += browse(chair, d)
        _burst(pool, jobs)

        # 5. the clerk numbers and seals whatever was approved
        jobs = []
        for d in [*document_ids, uploaded]:
            key = _key()
            jobs += [sign(clerk, d, "issue", key)] * REPEAT + [sign(clerk, d, "issue", _key())]
            jobs += browse(clerk, d)
        _burst(pool, jobs)
    elapsed = time.perf_counter() - started

    answers = recorder.answers
    changing = [a for a in answers if a.what in STATE_CHANGING]
    server_errors = [a for a in answers if a.status >= 500]
    assert not server_errors, [(a.who, a.what, a.path, a.status) for a in server_errors]
    assert elapsed < BOUND_S, f"the load took {elapsed:.0f} s"

    # --- what the database holds ------------------------------------------------------------
    with ctx.db.session() as session:
        requests = list(session.scalars(select(SignatureRequest)))
        revisions = list(session.scalars(select(Revision)))
        steps = list(session.scalars(select(StepRecord)))
        versions = list(session.scalars(select(DocumentVersion)))
        act_keys = {k.key: k for k in session.scalars(select(IdempotencyKey))}
        documents_stored = len(list(session.scalars(select(Document.id))))
        states = Counter(session.scalars(select(WorkflowInstance.state)))

    # one chain per version: indexes 0..k, each revision a byte prefix of the next
    for version in versions:
        chain = sorted((r for r in revisions if r.version_id == version.id), key=lambda r: r.index)
        assert [r.index for r in chain] == list(range(len(chain))), f"version {version.id}: {[r.index for r in chain]}"
        data = [ctx.blobs.read(r.sha256) for r in chain]
        for earlier, later in itertools.pairwise(data):
            assert len(later) > len(earlier) and later.startswith(earlier), f"fork in version {version.id}"

    # every signed revision: exactly one completed request (or one plugin upload) and one done step
    signed = [r for r in revisions if r.kind == "signature"]
    completed = [q for q in requests if q.status == "completed"]
    assert sorted(q.result_revision_id for q in completed) == sorted(r.id for r in signed)
    step_of_revision = Counter(s.revision_id for s in steps if s.revision_id is not None)
    assert all(step_of_revision[r.id] == 1 for r in signed), step_of_revision
    assert all(s.status == "done" for s in steps if s.revision_id is not None)
    # no two completed requests for one step, no request key used twice
    assert len({q.step_id for q in completed}) == len(completed)
    request_by_key = {q.idempotency_key: q for q in requests if q.idempotency_key}

    # every successful signing answer has its completed request; every refused key left nothing
    groups: dict[str, list[Answer]] = defaultdict(list)
    for a in changing:
        groups[a.key].append(a)
    refused = 0
    for key, group in groups.items():
        ok = [a for a in group if a.ok]
        refused += len(group) - len(ok)
        what = group[0].what
        if what == "sign":
            stored = request_by_key.get(key)
            if ok:
                assert len(ok) == len(group), f"a repeat of a successful request was refused: {group}"
                assert stored is not None and stored.status == "completed", (key, stored and stored.status)
            else:
                assert stored is None or stored.status != "completed", key
                assert all(400 <= a.status < 500 for a in group)
        elif what == "act":
            stored_key = act_keys.get(key)
            if ok:
                assert len(ok) == len(group), f"a repeat of a successful action was refused: {group}"
                assert stored_key is not None
            else:
                assert stored_key is None, key
        elif what == "api-create":
            assert len({a.json()["id"] for a in ok}) <= 1
        elif what == "api-complete":
            stored = next(q for q in requests if q.id == key)
            statuses = [a.status for a in group]
            if stored.status == "completed":
                assert all(a.status == 200 for a in group), statuses
                assert len({a.json()["revision_index"] for a in group}) == 1
            else:
                # another adviser signed the memo between this request's prepare and its value:
                # the value no longer fits the head, the request ends refused, nothing embedded
                assert stored.status == "failed" and "changed since" in (stored.error or ""), \
                    (stored.status, stored.error)
                assert 409 in statuses and all(400 <= a.status < 500 for a in group), statuses

    assert documents_stored == DOCUMENTS + 1
    fsck = server.esign("fsck")
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    server.process.terminate()
    server.process.wait(20)
    log = server.log.read_text(errors="replace")
    assert "Traceback" not in log and " ERROR " not in log, log[-5000:]

    figures = {
        "concurrent_threads": THREADS,
        "people": len(people),
        "documents": DOCUMENTS + 1,
        "requests": len(answers),
        "state_changing_requests": len(changing),
        "refused_4xx": refused,
        "server_errors": len(server_errors),
        "signature_requests": len(requests),
        "revisions": len(revisions),
        "signed_revisions": len(signed),
        "versions": len(versions),
        "states": dict(states),
        "seconds": round(elapsed, 1),
        "slowest_s": round(max(a.seconds for a in answers), 2),
    }
    print("load:", json.dumps(figures, ensure_ascii=False))
    if os.environ.get("ESIGN_LOAD_REPORT"):
        Path(os.environ["ESIGN_LOAD_REPORT"]).write_text(json.dumps(figures, indent=2, ensure_ascii=False))
