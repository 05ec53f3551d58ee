"""Workflow check against the database's record, isolation, bulk audit (pool and RQ), CLI."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from esign.verify import (
    Expectation,
    ExpectedSignature,
    TrustStore,
    Verdict,
    verify_isolated,
    verify_many,
    verify_pdf,
)
from tests.verify import hostile
from tests.verify.chain import STEPS, Chain

ROOT = Path(__file__).resolve().parents[2]


def expectation(chain: Chain, **changes) -> Expectation:  # type: ignore[no-untyped-def]
    sigs = [ExpectedSignature(f, chain.fingerprints[f], role) for f, _c, role in STEPS]
    revs = tuple(hashlib.sha256(r).hexdigest() for r in chain.revisions)
    return Expectation(**{"signatures": tuple(sigs), "revision_sha256": revs, **changes})


def test_workflow_matches(chain: Chain, trust: TrustStore) -> None:
    report = verify_pdf(chain.final, trust, expected=expectation(chain))
    assert report.verdict is Verdict.VALID, report.reasons


def test_workflow_wrong_signer(chain: Chain, trust: TrustStore) -> None:
    exp = expectation(chain)
    sigs = list(exp.signatures)
    sigs[3] = ExpectedSignature("chair", chain.fingerprints["adviser_1"], "chair")
    report = verify_pdf(chain.final, trust, expected=Expectation(tuple(sigs), exp.revision_sha256))
    assert report.verdict is Verdict.INVALID
    assert any(f.code == "workflow.signer_mismatch" and f.field == "chair" for f in report.reasons)


def test_workflow_wrong_order_and_missing(chain: Chain, trust: TrustStore) -> None:
    exp = expectation(chain)
    sigs = list(exp.signatures)
    sigs[1], sigs[2] = sigs[2], sigs[1]
    sigs.append(ExpectedSignature("adviser_3", "00" * 32, "adviser"))
    report = verify_pdf(chain.final, trust, expected=Expectation(tuple(sigs)))
    assert {"workflow.order_mismatch", "workflow.missing_signature"} <= report.codes


def test_workflow_unexpected_signature(chain: Chain, trust: TrustStore) -> None:
    exp = expectation(chain)
    report = verify_pdf(chain.final, trust, expected=Expectation(exp.signatures[:4]))
    assert "workflow.unexpected_signature" in report.codes


def test_stored_revision_differs(chain: Chain, trust: TrustStore) -> None:
    exp = expectation(chain)
    revs = list(exp.revision_sha256)
    revs[2] = "ab" * 32
    report = verify_pdf(chain.final, trust, expected=Expectation(exp.signatures, tuple(revs)))
    assert report.verdict is Verdict.MODIFIED
    assert "revision.mismatch" in report.codes


def test_isolated_matches_in_process(chain: Chain, trust: TrustStore) -> None:
    report = verify_isolated(chain.final, trust)
    assert report.verdict is Verdict.VALID
    assert len(report.signatures) == 6


def test_isolated_timeout_is_malformed(chain: Chain, trust: TrustStore) -> None:
    report = verify_isolated(chain.final, trust, timeout_s=0.001)
    assert report.verdict is Verdict.MALFORMED
    assert "verify.timeout" in report.codes


def test_isolated_memory_limit_is_malformed(chain: Chain, trust: TrustStore) -> None:
    report = verify_isolated(hostile.deflate_bomb(100), trust, memory_mb=64)
    assert report.verdict is Verdict.MALFORMED
    assert report.codes & {"verify.memory", "verify.crashed", "pdf.decode_limit"}


def test_isolated_malformed_inputs_leave_the_process_unharmed(
    chain: Chain, trust: TrustStore
) -> None:
    for data in (
        hostile.deep_nesting(10_000),
        hostile.deflate_bomb(400),
        b"%PDF-1.7\n" + b"\x00" * 5000,
    ):
        assert verify_isolated(data, trust, timeout_s=10).verdict is Verdict.MALFORMED
    assert verify_pdf(chain.final, trust).verdict is Verdict.VALID


@pytest.fixture(scope="module")
def archive(
    chain: Chain, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Verdict]]:
    folder = tmp_path_factory.mktemp("archive")
    (folder / "sub").mkdir()
    files = {
        "valid.pdf": (chain.final, Verdict.VALID),
        "sub/draft.pdf": (chain.revisions[2], Verdict.VALID),
        "unsigned.pdf": (chain.revisions[0], Verdict.UNSIGNED),
        "appended.PDF": (hostile.appended_bytes(chain.final), Verdict.MODIFIED),
        "tampered.pdf": (hostile.tamper_signed_byte(chain.final), Verdict.INVALID),
        "deep.pdf": (hostile.deep_nesting(10_000), Verdict.MALFORMED),
    }
    for name, (data, _) in files.items():
        (folder / name).write_bytes(data)
    (folder / "notes.txt").write_text("not a pdf, not audited")
    return folder, {name: v for name, (_, v) in files.items()}


def test_verify_many_over_a_pool(
    archive: tuple[Path, dict[str, Verdict]], trust: TrustStore
) -> None:
    from esign.verify.audit import find_pdfs

    folder, expected = archive
    seen = []
    results = dict(
        verify_many(find_pdfs(folder), trust, jobs=2, progress=lambda d, t: seen.append((d, t)))
    )
    got = {str(p.relative_to(folder)): r.verdict for p, r in results.items()}
    assert got == expected
    assert seen[-1] == (len(expected), len(expected))


def test_audit_writes_csv_and_json(
    archive: tuple[Path, dict[str, Verdict]], trust: TrustStore, tmp_path: Path
) -> None:
    from esign.verify.audit import find_pdfs, run_audit

    folder, expected = archive
    summary = run_audit(find_pdfs(folder), trust, tmp_path, jobs=2)
    assert summary.total == len(expected)
    assert summary.by_verdict["VALID"] == 2 and summary.by_verdict["MALFORMED"] == 1
    rows = summary.csv_path.read_text(encoding="utf-8").splitlines()
    assert rows[0].startswith("path,verdict") and len(rows) == len(expected) + 1
    doc = json.loads(summary.json_path.read_text(encoding="utf-8"))
    assert doc["summary"]["total"] == len(expected)
    assert {f["verdict"] for f in doc["files"]} == {v.name for v in expected.values()}


def _redis_up() -> bool:
    try:
        from redis import Redis

        return bool(Redis.from_url("redis://127.0.0.1:6379", socket_connect_timeout=0.5).ping())
    except Exception:  # noqa: BLE001
        return False


@pytest.mark.skipif(not _redis_up(), reason="no Redis on 127.0.0.1:6379")
def test_audit_fans_out_over_rq(
    archive: tuple[Path, dict[str, Verdict]], trust: TrustStore, tmp_path: Path
) -> None:
    from esign.verify.audit import find_pdfs, run_audit

    folder, expected = archive
    queue = f"esign-audit-test-{uuid.uuid4().hex[:8]}"
    rq = Path(sys.executable).with_name("rq")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # enqueue first, then a burst worker drains the queue and exits
    import threading

    result: dict[str, object] = {}

    def run() -> None:
        result["summary"] = run_audit(
            find_pdfs(folder), trust, tmp_path, redis_url="redis://127.0.0.1:6379", queue_name=queue
        )

    t = threading.Thread(target=run)
    t.start()
    worker = subprocess.run(
        [str(rq), "worker", "--burst", "-u", "redis://127.0.0.1:6379", queue],
        check=False,
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    t.join(120)
    assert worker.returncode == 0, worker.stderr[-2000:]
    summary = result["summary"]
    assert summary.total == len(expected)  # type: ignore[attr-defined]
    assert summary.by_verdict["INVALID"] == 1  # type: ignore[attr-defined]


def test_cli_verify_exit_codes(chain: Chain, tmp_path: Path) -> None:
    from esign.verify.commands import make_verify_command

    good = tmp_path / "good.pdf"
    good.write_bytes(chain.final)
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(hostile.tamper_signed_byte(chain.final))
    cmd = make_verify_command()
    runner = CliRunner()
    ok = runner.invoke(cmd, [str(good), "--trust", str(chain.root)])
    assert ok.exit_code == 0, ok.output
    assert "VALID" in ok.output
    res = runner.invoke(cmd, [str(good), str(bad), "--trust", str(chain.root), "--json"])
    assert res.exit_code == 5
    docs = json.loads(res.output)
    assert [d["verdict"] for d in docs] == ["VALID", "INVALID"]
    default = make_verify_command(trust_roots=[chain.root])
    assert runner.invoke(default, [str(good)]).exit_code == 0


def test_cli_audit(archive: tuple[Path, dict[str, Verdict]], chain: Chain, tmp_path: Path) -> None:
    from esign.verify.commands import make_audit_command

    folder, _ = archive
    res = CliRunner().invoke(
        make_audit_command(),
        [str(folder), "--trust", str(chain.root), "--jobs", "2", "--out", str(tmp_path / "out")],
    )
    assert res.exit_code == 6, res.output
    assert (tmp_path / "out" / "audit.csv").exists()
