"""Bulk audit: verify a folder of signed PDFs, write CSV and JSON summaries.

Locally the files go over a process pool (all cores by default). Given a Redis
URL, chunks of paths are queued on RQ and verified by ``rq worker`` processes
that see the same files (shared storage); this process collects the results.
"""

from __future__ import annotations

import csv
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from esign.errors import VerificationError
from esign.verify.core import DEFAULT_LIMITS, Limits, TrustStore
from esign.verify.isolated import failure_report, verify_many, verify_path
from esign.verify.report import Report, Verdict

QUEUE = "esign-audit"
CSV_COLUMNS = (
    "path",
    "verdict",
    "reasons",
    "signatures",
    "signers",
    "revisions",
    "size",
    "sha256",
    "duration_ms",
)


@dataclass(frozen=True)
class AuditSummary:
    total: int
    by_verdict: dict[str, int]
    seconds: float
    files_per_second: float
    csv_path: Path
    json_path: Path


def find_pdfs(root: str | Path) -> list[Path]:
    """Every *.pdf below root (case-insensitive), sorted for a stable report."""
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise VerificationError("The audit folder %(path)s does not exist", path=str(root))
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() == ".pdf")


def verify_chunk(
    paths: Sequence[str],
    roots_der: Sequence[bytes],
    options: dict[str, Any],
    limits: Limits,
    validation_time: str,
) -> list[tuple[str, Report]]:
    """RQ job: verify a chunk of files in the worker (paths must be visible to it)."""

    trust = _worker_trust(tuple(roots_der), tuple(sorted(options.items())))
    moment = datetime.fromisoformat(validation_time)
    return [(p, verify_path(p, trust, limits, moment)) for p in paths]


_TRUST_CACHE: dict[Any, TrustStore] = {}


def _worker_trust(roots_der: tuple[bytes, ...], options: tuple[Any, ...]) -> TrustStore:
    from asn1crypto import x509

    key = (roots_der, options)
    if key not in _TRUST_CACHE:  # an RQ worker keeps its TrustStore (and caches) between jobs
        _TRUST_CACHE[key] = TrustStore(
            [x509.Certificate.load(d) for d in roots_der], **dict(options)
        )
    return _TRUST_CACHE[key]


def verify_over_rq(
    paths: Sequence[Path],
    trust: TrustStore,
    redis_url: str,
    *,
    limits: Limits = DEFAULT_LIMITS,
    validation_time: datetime | None = None,
    chunk_size: int = 20,
    queue_name: str = QUEUE,
    progress: Callable[[int, int], None] | None = None,
    poll_s: float = 0.2,
) -> Iterator[tuple[Path, Report]]:
    """Queue chunks on RQ and yield results as workers finish them."""
    from redis import Redis
    from rq import Queue

    try:
        conn = Redis.from_url(redis_url)
        conn.ping()
    except Exception as e:
        raise VerificationError("Cannot reach the job queue at %(url)s", url=redis_url) from e
    queue = Queue(queue_name, connection=conn)
    moment = (validation_time or datetime.now(UTC).replace(second=0, microsecond=0)).isoformat()
    roots = [c.dump() for c in trust.roots]
    options = {
        "allow_fetching": trust.allow_fetching,
        "require_revocation": trust.require_revocation,
    }
    jobs = []
    for i in range(0, len(paths), chunk_size):
        chunk = [str(p.resolve()) for p in paths[i : i + chunk_size]]
        job = queue.enqueue(
            verify_chunk,
            chunk,
            roots,
            options,
            limits,
            moment,
            job_timeout=int(limits.timeout_s * len(chunk) + 60),
            result_ttl=3600,
        )
        jobs.append((job, chunk))
    done, total = 0, len(paths)
    while jobs:
        still = []
        for job, chunk in jobs:
            status = job.get_status(refresh=True)
            if status == "finished":
                for p, report in job.return_value():
                    done += 1
                    if progress:
                        progress(done, total)
                    yield Path(p), report
            elif status in ("failed", "stopped", "canceled"):
                for p in chunk:
                    done += 1
                    if progress:
                        progress(done, total)
                    yield (
                        Path(p),
                        failure_report("verify.crashed", None, f"RQ job {job.id} {status}"),
                    )
            else:
                still.append((job, chunk))
        jobs = still
        if jobs:
            time.sleep(poll_s)


def run_audit(
    paths: Iterable[str | Path],
    trust: TrustStore,
    out_dir: str | Path,
    *,
    jobs: int | None = None,
    redis_url: str | None = None,
    limits: Limits = DEFAULT_LIMITS,
    validation_time: datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
    queue_name: str = QUEUE,
) -> AuditSummary:
    """Verify every file and write ``audit.csv`` and ``audit.json`` into out_dir."""
    files = [Path(p) for p in paths]
    started = time.perf_counter()
    if redis_url:
        results = verify_over_rq(
            files,
            trust,
            redis_url,
            limits=limits,
            validation_time=validation_time,
            progress=progress,
            queue_name=queue_name,
        )
    else:
        results = verify_many(
            files,
            trust,
            jobs=jobs,
            limits=limits,
            validation_time=validation_time,
            progress=progress,
        )
    collected = sorted(results, key=lambda item: str(item[0]))
    seconds = time.perf_counter() - started
    return write_summaries(collected, out_dir, seconds)


def write_summaries(
    results: Sequence[tuple[Path, Report]], out_dir: str | Path, seconds: float
) -> AuditSummary:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    counts = Counter(r.verdict.name for _, r in results)
    by_verdict = {v.name: counts.get(v.name, 0) for v in Verdict}
    rate = len(results) / seconds if seconds > 0 else 0.0
    csv_path = out / "audit.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(CSV_COLUMNS)
        for path, r in results:
            w.writerow(
                (
                    str(path),
                    r.verdict.name,
                    " ".join(sorted({f.code for f in r.reasons})),
                    len(r.signatures),
                    "; ".join(s.signer or "?" for s in r.signatures if s.kind != "timestamp"),
                    r.revisions,
                    r.size,
                    r.file_sha256,
                    round(r.duration_ms, 1),
                )
            )
    json_path = out / "audit.json"
    json_path.write_text(
        json.dumps(
            {
                "summary": {
                    "total": len(results),
                    "by_verdict": by_verdict,
                    "seconds": round(seconds, 3),
                    "files_per_second": round(rate, 2),
                },
                "files": [{"path": str(p), **r.to_dict()} for p, r in results],
            },
            ensure_ascii=False,
            indent=1,
        ),
        encoding="utf-8",
    )
    return AuditSummary(len(results), by_verdict, seconds, rate, csv_path, json_path)
