"""Run every benchmark and print one table: esign, the reference on the same input and machine, ratio, target.

    .venv/bin/python bench/run.py [--quick] [--only signing,memory,verify,web] [--profile]

Each benchmark runs in its own process (bench/<name>.py, also runnable
alone). The combined result goes to bench/out/latest.json and
bench/out/latest.md (a markdown table to quote). ``--profile`` also writes
cProfile reports of esign's signing step and of the inbox and document pages
to bench/out/profile-*.txt. Inputs are generated on the first run and cached
in bench/out/inputs; the web benchmark creates and drops the PostgreSQL
database ``esign_bench`` on 127.0.0.1:5432 (ESIGN_BENCH_POSTGRES overrides the
admin URL).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import OUT, ROOT, Row, load_average, machine, table

BENCHMARKS = ("signing", "memory", "verify", "web")
TIME_CAP_S = 900


def git_state() -> dict[str, object]:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()

    return {"commit": git("rev-parse", "--short", "HEAD"),
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def run_one(name: str, quick: bool) -> tuple[list[Row], float, str]:
    out = OUT / f"{name}.json"
    out.unlink(missing_ok=True)
    cmd = [sys.executable, str(ROOT / "bench" / f"{name}.py"), "--json", str(out)]
    if quick:
        cmd.append("--quick")
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIME_CAP_S, check=False)
    seconds = time.perf_counter() - started
    if proc.returncode != 0 or not out.exists():
        return [], seconds, proc.stderr[-2000:] or proc.stdout[-2000:]
    return [Row(**r) for r in json.loads(out.read_text())], seconds, ""


def markdown(info: dict[str, object], rows: list[Row], notes: list[str]) -> str:
    head = (f"esign benchmarks, {info['date']}: {info['nproc']} CPUs ({info['cpu']}), {info['memory_gib']} GiB, "
            f"Python {info['python']}, pyHanko {info['pyhanko']}, commit {info['commit']}"
            f"{' (working tree modified)' if info['dirty'] else ''}")
    lines = [head, "", table(rows, markdown=True), ""]
    lines += ["Notes:", ""] + [f"- {r.group} / {r.case}: {r.note}" for r in rows if r.note] + notes
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs, fewer files and requests")
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated subset")
    parser.add_argument("--profile", action="store_true", help="also write cProfile reports to bench/out")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    info = machine() | git_state()
    print(f"{info['date']}  {info['nproc']} CPUs  {info['cpu']}  {info['memory_gib']} GiB  "
          f"pyHanko {info['pyhanko']}  commit {info['commit']}{' (modified)' if info['dirty'] else ''}")
    rows: list[Row] = []
    notes: list[str] = []
    timings = {}
    loads: dict[str, str] = {}
    for name in [n.strip() for n in args.only.split(",") if n.strip()]:
        if name not in BENCHMARKS:
            parser.error(f"unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)}")
        before = load_average()
        print(f"running bench/{name}.py (load average {before}) ...", flush=True)
        got, seconds, error = run_one(name, args.quick)
        timings[name] = round(seconds, 1)
        loads[name] = f"{before} → {load_average()}"
        notes.append(f"- {name}: {seconds:.0f} s, load average (1/5/15 min) {loads[name]}")
        if error:
            notes.append(f"- {name}: FAILED after {seconds:.0f} s: {error.strip().splitlines()[-1]}")
            print(f"  FAILED after {seconds:.0f} s:\n{error}", file=sys.stderr)
        else:
            print(f"  {len(got)} rows in {seconds:.0f} s")
        rows += got
    if args.profile:
        for name, cmd in (("signing", ["bench/signing.py", "--profile"]), ("web", ["bench/web.py", "--profile"])):
            proc = subprocess.run([sys.executable, *cmd], cwd=ROOT, capture_output=True, text=True,
                                  timeout=TIME_CAP_S, check=False)
            (OUT / f"profile-{name}.txt").write_text(proc.stdout + proc.stderr)
            print(f"profile written to bench/out/profile-{name}.txt")
    print()
    print(table(rows))
    for line in notes:
        print(line)
    if any(float(v.split()[0]) > (info["nproc"] or 1) for v in loads.values()):
        print("WARNING: the machine was busy with other work (load average above the CPU count): "
              "absolute times, parallel scaling and web latency are inflated; the interleaved ratios less so")
    met = sum(1 for r in rows if r.met is True)
    missed = [r for r in rows if r.met is False]
    print(f"\ntargets: {met} met, {len(missed)} missed")
    (OUT / "latest.json").write_text(json.dumps(
        {"machine": info, "seconds": timings, "load_average": loads, "quick": args.quick,
         "rows": [r.__dict__ for r in rows], "notes": notes}, indent=2, ensure_ascii=False, default=str))
    (OUT / "latest.md").write_text(markdown(info, rows, notes))
    print("written: bench/out/latest.json, bench/out/latest.md")


if __name__ == "__main__":
    main()
