"""Shared pieces of the benchmarks: paths, the development PKI, timing, rows and tables.

Every benchmark script returns a list of :class:`Row`: one measured quantity,
esign's figure, raw pyHanko's (or another reference's) figure on the same
input and machine, their ratio, and the target it is held against.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
INPUTS = OUT / "inputs"
PKI = OUT / "pki"

if str(ROOT) not in sys.path:  # run as `python bench/x.py` from anywhere
    sys.path.insert(0, str(ROOT))


def load_pki_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_dev_pki", ROOT / "keys" / "make_dev_pki.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: port of the bench PKI's OCSP, CRL and TSA services, written into its certificates
#: (not the development default 9780, so that a running `make run` does not collide)
PKI_PORT = 19780


def dev_pki() -> Path:
    """The development PKI under bench/out/pki (created once; make_dev_pki is idempotent)."""
    if not (PKI / "people.json").exists():
        load_pki_module().make_dev_pki(PKI, port=PKI_PORT)
    return PKI


class PkiServices:
    """certomancer's OCSP, CRL and TSA services for the bench PKI on 127.0.0.1, in a thread.

    esign checks a signer's certificate (path and OCSP) before it prepares a
    signature; the services must answer, as the CA's would in production.
    Nothing is started when the port is taken (another bench run serves it).
    """

    def __init__(self) -> None:
        import logging
        import socket
        import threading

        self.server = None
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", PKI_PORT)) == 0:
                return
        from certomancer.integrations.animator import Animator, AnimatorArchStore
        from certomancer.registry import CertomancerConfig
        from werkzeug.serving import make_server

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        arch = CertomancerConfig.from_file(str(dev_pki() / "certomancer.yml")).get_pki_arch("esign")
        app = Animator(AnimatorArchStore({"esign": arch}), with_web_ui=False)
        self.server = make_server("127.0.0.1", PKI_PORT, app, threaded=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def __enter__(self) -> PkiServices:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        if self.server is not None:
            self.server.shutdown()


def passphrase() -> str:
    return os.environ.get("ESIGN_SOFTKEY_PASSPHRASE") or "esign-dev"


# --- timing ------------------------------------------------------------------------------------


def median_ms(fn: Callable[[], Any], runs: int, warmup: int = 1) -> tuple[float, list[float]]:
    """Median wall time of ``fn`` in milliseconds over ``runs`` calls, after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), times


_WORKER = None


def in_worker_thread(fn: Callable[[], Any]) -> Any:
    """Call ``fn`` in a long-lived worker thread, as the web server (waitress) does.

    On the main thread, Python 3.11's ``asyncio.run`` formats a ValueError
    with the repr of its SIGINT handler, which holds the finished task, whose
    repr holds its result: for esign's coroutines that is the whole PDF
    (``reprlib`` falls back to ``repr()`` of the bytes). Worker threads do
    not install the handler; the main-thread figure is reported separately.
    """
    global _WORKER
    if _WORKER is None:
        from concurrent.futures import ThreadPoolExecutor

        _WORKER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bench-worker")
    return _WORKER.submit(fn).result()


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of non-empty ``values``."""
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


# --- rows --------------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the combined table."""

    group: str
    case: str
    unit: str
    esign: float | None
    reference: float | None = None
    #: what the reference column holds ("pyHanko sign_pdf", "pdfsig", ...)
    reference_name: str = "pyHanko"
    #: esign / reference, unless given
    ratio: float | None = None
    target: str = ""
    #: True met, False missed, None: no target on this row
    met: bool | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.ratio is None and self.esign is not None and self.reference:
            self.ratio = self.esign / self.reference


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "–"
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".strip()


def verdict(met: bool | None) -> str:
    return {True: "met", False: "MISSED", None: ""}[met]


def table(rows: Iterable[Row], markdown: bool = False) -> str:
    """The rows side by side: case, esign, reference, ratio, target."""
    header = ("group", "case", "esign", "reference", "ratio", "target", "")
    lines = [
        (
            r.group,
            r.case,
            fmt(r.esign, r.unit),
            f"{fmt(r.reference, r.unit)} ({r.reference_name})" if r.reference is not None else "–",
            f"{r.ratio:.2f}×" if r.ratio is not None else "–",
            r.target,
            verdict(r.met),
        )
        for r in rows
    ]
    if markdown:
        out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        out += ["| " + " | ".join(cell.replace("|", "\\|") for cell in line) + " |" for line in lines]
        return "\n".join(out)
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(header)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines]
    return "\n".join(out)


def machine() -> dict[str, Any]:
    """nproc, CPU model and memory of this machine, and the versions that matter."""
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    from importlib.metadata import version

    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": mem_gib,
        "python": platform.python_version(),
        "pyhanko": version("pyhanko"),
        "pyhanko_certvalidator": version("pyhanko-certvalidator"),
    }


def script_args(description: str,
                extra: Callable[[argparse.ArgumentParser], None] | None = None) -> argparse.Namespace:
    """--quick and --json, and the script's own options (``extra`` adds them)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="fewer runs and smaller inputs")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON to this file")
    if extra:
        extra(parser)
    return parser.parse_args()


def emit(rows: list[Row], args: argparse.Namespace) -> None:
    """Print the rows as a table; write them as JSON when asked (run.py collects them)."""
    print(table(rows))
    notes = [f"  {r.case}: {r.note}" for r in rows if r.note]
    if notes:
        print("notes:\n" + "\n".join(notes))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2, ensure_ascii=False))
