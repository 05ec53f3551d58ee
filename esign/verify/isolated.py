"""Verification in worker processes, under a wall-clock and an address-space limit.

A hostile PDF may try to exhaust time or memory, or crash the parser. Each
verification therefore runs in a child process (forked from a forkserver that
has pyHanko loaded, so a child starts in milliseconds). If the child runs out
of time, memory or crashes, the report is MALFORMED with the reason: the file
could not be processed within the limits, and a verifier that cannot finish
cannot tell damage from attack, so the worst verdict is the honest one (never
VALID; INVALID would claim a signature was checked and found wrong).
"""

from __future__ import annotations

import contextlib
import hashlib
import multiprocessing as mp
import os
import resource
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from esign.verify.core import DEFAULT_LIMITS, Expectation, Limits, TrustStore, verify_pdf
from esign.verify.report import Finding, Report, decide

_CTX: Any = None


def _context() -> Any:
    global _CTX
    if _CTX is None:
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["esign.verify.core"])
        _CTX = ctx
    return _CTX


def failure_report(
    code: str,
    data: bytes | None = None,
    detail: str = "",
    started: float | None = None,
    size: int | None = None,
) -> Report:
    """The report of a file the verifier could not finish (never VALID)."""
    finding = Finding.of(code, detail=detail)
    return Report(
        verdict=decide([finding], signed=False),
        reasons=(finding,),
        file_sha256=hashlib.sha256(data).hexdigest() if data is not None else "",
        size=len(data) if data is not None else (size or 0),
        duration_ms=(time.perf_counter() - started) * 1000 if started is not None else 0.0,
    )


def _limit_memory(memory_mb: int) -> None:
    limit = memory_mb * 1024 * 1024
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


class _Timeout(BaseException):
    """Raised by the alarm in a worker; a BaseException so that no `except Exception` eats it."""


def _on_alarm(signum: int, frame: Any) -> None:
    raise _Timeout()


def _child(
    conn: Any,
    data: bytes,
    trust: TrustStore,
    expected: Expectation | None,
    limits: Limits,
    validation_time: datetime | None,
    memory_mb: int,
) -> None:
    _limit_memory(memory_mb)
    try:
        report = verify_pdf(
            data, trust, expected=expected, limits=limits, validation_time=validation_time
        )
    except MemoryError:
        report = failure_report("verify.memory", data)
    except BaseException as e:  # noqa: BLE001 - whatever happens, the parent gets a report
        report = failure_report("verify.crashed", data, f"{type(e).__name__}: {str(e)[:200]}")
    try:
        conn.send(report)
    finally:
        conn.close()


def verify_isolated(
    data: bytes,
    trust: TrustStore,
    *,
    expected: Expectation | None = None,
    limits: Limits = DEFAULT_LIMITS,
    validation_time: datetime | None = None,
    timeout_s: float | None = None,
    memory_mb: int | None = None,
) -> Report:
    """verify_pdf in a child process; a time-out, crash or exhausted memory gives MALFORMED."""
    timeout_s = limits.timeout_s if timeout_s is None else timeout_s
    memory_mb = limits.memory_mb if memory_mb is None else memory_mb
    started = time.perf_counter()
    if len(data) > limits.max_bytes:  # do not even ship it to a child
        return failure_report("pdf.too_large", data, f"{len(data)} bytes", started)
    ctx = _context()
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(
        target=_child,
        args=(child, data, trust, expected, limits, validation_time, memory_mb),
        daemon=True,
    )
    proc.start()
    child.close()
    try:
        if parent.poll(timeout_s):
            try:
                report: Report = parent.recv()
            except (EOFError, OSError):
                report = failure_report("verify.crashed", data, _exit_detail(proc), started)
        else:
            report = failure_report("verify.timeout", data, f"more than {timeout_s:g} s", started)
    finally:
        parent.close()
        if proc.is_alive():
            proc.kill()
        proc.join(5)
    return report


def _exit_detail(proc: Any) -> str:
    proc.join(1)
    code = proc.exitcode
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


# --- many files over a process pool ------------------------------------------------------

_WORKER: dict[str, Any] = {}


def _init_worker(trust: TrustStore, limits: Limits, validation_time: datetime | None) -> None:
    # each worker keeps its TrustStore (and caches) for every file it verifies
    _limit_memory(limits.memory_mb)
    signal.signal(signal.SIGALRM, _on_alarm)
    _WORKER.update(trust=trust, limits=limits, validation_time=validation_time)


def verify_path(
    path: str, trust: TrustStore, limits: Limits, validation_time: datetime | None
) -> Report:
    """Read and verify one file under an alarm (in a worker that already has a memory limit)."""
    started = time.perf_counter()
    try:
        size = os.stat(path).st_size
        if size > limits.max_bytes:
            return failure_report("pdf.too_large", None, f"{size} bytes", started, size=size)
        data = Path(path).read_bytes()
    except OSError as e:
        return failure_report("verify.crashed", None, f"cannot read: {e.strerror}", started)
    signal.setitimer(signal.ITIMER_REAL, limits.timeout_s)
    try:
        return verify_pdf(data, trust, limits=limits, validation_time=validation_time)
    except _Timeout:
        return failure_report("verify.timeout", data, f"more than {limits.timeout_s:g} s", started)
    except MemoryError:
        return failure_report("verify.memory", data, "", started)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _work(paths: list[str]) -> list[Report]:
    return [
        verify_path(p, _WORKER["trust"], _WORKER["limits"], _WORKER["validation_time"])
        for p in paths
    ]


def _chunk_size(total: int, jobs: int) -> int:
    """Files per task: one for short runs (balance), up to 8 for long ones (fewer round trips)."""
    return max(1, min(8, total // (jobs * 16)))


def verify_many(
    paths: Iterable[str | Path],
    trust: TrustStore,
    *,
    jobs: int | None = None,
    limits: Limits = DEFAULT_LIMITS,
    validation_time: datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
    chunk_size: int | None = None,
) -> Iterator[tuple[Path, Report]]:
    """Verify files over a process pool (all cores by default); yields (path, report) as they finish.

    One pool serves the run and each worker keeps its TrustStore, so certificate
    path outcomes are cached across files; one validation time serves the whole
    run. Files go out in small chunks, a bounded number at a time (a long audit
    does not queue every file up front). If a worker dies, the files of the
    chunks it held are verified again one by one in isolation (one crash costs
    one file) and the rest continue on a fresh pool.
    """
    todo = [Path(p) for p in paths]
    total = len(todo)
    if validation_time is None:
        validation_time = datetime.now(UTC).replace(second=0, microsecond=0)
    jobs = max(1, jobs or os.cpu_count() or 1)
    size = chunk_size or _chunk_size(total, jobs)
    chunks = [todo[i : i + size] for i in range(0, total, size)]
    chunks.reverse()  # pop() from the end takes them in order
    done = 0
    broken: list[Path] = []
    while chunks:
        with ProcessPoolExecutor(
            max_workers=jobs,
            mp_context=_context(),
            initializer=_init_worker,
            initargs=(trust, limits, validation_time),
        ) as pool:
            in_flight: dict[Future[list[Report]], list[Path]] = {}
            pool_broken = False
            finished_any = False
            while chunks or in_flight:
                while chunks and not pool_broken and len(in_flight) < jobs * 2:
                    chunk = chunks.pop()
                    try:
                        in_flight[pool.submit(_work, [str(p) for p in chunk])] = chunk
                    except BrokenProcessPool:
                        chunks.append(chunk)
                        pool_broken = True
                if not in_flight:
                    break
                finished, _ = wait(list(in_flight), return_when=FIRST_COMPLETED)
                for fut in finished:
                    chunk = in_flight.pop(fut)
                    try:
                        reports = fut.result()
                    except BrokenProcessPool:
                        broken.extend(chunk)
                        pool_broken = True
                        continue
                    except Exception as e:  # noqa: BLE001 - never lose a file from the audit
                        failed = failure_report("verify.crashed", None, f"{type(e).__name__}: {e}")
                        reports = [failed] * len(chunk)
                    finished_any = True
                    for path, report in zip(chunk, reports, strict=True):
                        done += 1
                        if progress:
                            progress(done, total)
                        yield path, report
            # a broken pool: re-verify its files in isolation, the rest on a fresh pool,
            # unless this pool broke before finishing anything (then all go one by one)
            if pool_broken and not finished_any:
                while chunks:
                    broken.extend(chunks.pop())
        for path in broken:
            try:
                data = path.read_bytes()
                report = verify_isolated(
                    data, trust, limits=limits, validation_time=validation_time
                )
            except OSError as e:
                report = failure_report("verify.crashed", None, f"cannot read: {e.strerror}")
            done += 1
            if progress:
                progress(done, total)
            yield path, report
        broken = []
