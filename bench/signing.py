"""The server's time for one signing step: esign's prepare + finish against raw pyHanko.

The step is the chair's approval (a field lock, the full Noto stamp) on a memo
the drafter has certified. esign's figure is prepare + finish; the device's
signature of the tbs runs between them, outside the timed region, and is
reported on its own row. Raw pyHanko signs the same revision with the same key
(``SimpleSigner.load_pkcs12`` once) and the same stamp style, in one shot:
``sign_pdf`` with its stock dry-run sizing, and with ``bytes_reserved`` set;
and, for reference, with pyHanko's own default stamp. (This replaces
tests/signing/bench_approval.py.)

    .venv/bin/python bench/signing.py [--quick] [--profile]
"""

from __future__ import annotations

import gc
import io
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import inputs
from bench.common import Row, dev_pki, emit, in_worker_thread, passphrase, script_args

CREDENTIAL = "nguyenthiquynhtrieu-token"
TARGET = 0.5


def _esign_step(base: bytes, *, main_thread: bool = False):  # type: ignore[no-untyped-def]
    """A callable doing one step; returns (server ms, device ms) of the call.

    The step runs in a worker thread, as in the web server, unless ``main_thread``.
    """
    from esign.signing import deferred
    from esign.signing.backend import SignRequest

    step = inputs.step_for("chair", inputs.at(3))
    bundle = inputs.backend().certificate(CREDENTIAL)

    def run() -> tuple[float, float]:
        t0 = time.perf_counter()
        prepared = deferred.prepare_signature(base, step.spec, bundle)  # type: ignore[arg-type]
        t1 = time.perf_counter()
        value = inputs.backend().sign(SignRequest(credential=CREDENTIAL, tbs=prepared.tbs,
                                                  md_algorithm=prepared.md_algorithm,
                                                  mechanism=prepared.mechanism)).signature
        t2 = time.perf_counter()
        deferred.finish_signature(prepared, value, bundle)
        t3 = time.perf_counter()
        return ((t1 - t0) + (t3 - t2)) * 1000, (t2 - t1) * 1000

    return run if main_thread else (lambda: in_worker_thread(run))


def _raw_step(base: bytes, *, sized: bool, stock_stamp: bool = False):  # type: ignore[no-untyped-def]
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import signers
    from pyhanko.sign.fields import SigSeedSubFilter

    from esign.signing import deferred

    step = inputs.step_for("chair", inputs.at(3))
    spec = step.spec
    simple = signers.SimpleSigner.load_pkcs12(str(dev_pki() / f"{CREDENTIAL}.p12"),
                                              passphrase=passphrase().encode())
    assert simple is not None
    meta = signers.PdfSignatureMetadata(
        field_name="chair", md_algorithm="sha256", subfilter=SigSeedSubFilter.PADES,
        reason=spec.reason, location=spec.location, name=spec.stamp.name,  # type: ignore[attr-defined]
    )
    box = _field_box(base, "chair")
    # stock_stamp: pyHanko's default stamp (Courier, its own text), as a user of pyHanko gets it
    style = None if stock_stamp else deferred.stamp_style("full", box)
    params = None if stock_stamp else {"stamp": deferred.stamp_lines(spec.stamp, "full")}  # type: ignore[attr-defined]
    reserved = deferred.bytes_reserved(inputs.backend().certificate(CREDENTIAL)) if sized else None

    def run() -> float:
        t0 = time.perf_counter()
        writer = IncrementalPdfFileWriter(io.BytesIO(base))
        signers.PdfSigner(meta, simple, stamp_style=style).sign_pdf(
            writer, existing_fields_only=True, bytes_reserved=reserved, appearance_text_params=params
        ).getvalue()
        return (time.perf_counter() - t0) * 1000

    return run


def _field_box(pdf: bytes, name: str) -> tuple[float, float]:
    from pyhanko.pdf_utils.reader import PdfFileReader

    reader = PdfFileReader(io.BytesIO(pdf), strict=False)
    for ref in reader.root["/AcroForm"]["/Fields"]:
        obj = ref.get_object()
        if str(obj.get("/T")) == name:
            x1, y1, x2, y2 = (float(v) for v in obj["/Rect"])
            return abs(x2 - x1), abs(y2 - y1)
    raise KeyError(name)


def measure(kind: str, runs: int) -> list[Row]:
    base = inputs.revision(kind, 2, 1)
    label = {"p1": "1-page memo", "p20": "20-page memo", "scan10": "10 MB scan"}[kind]
    cases = {
        "esign": _esign_step(base),
        "esign-main": _esign_step(base, main_thread=True),
        "dry": _raw_step(base, sized=False),
        "sized": _raw_step(base, sized=True),
        "stock": _raw_step(base, sized=False, stock_stamp=True),
    }
    for fn in cases.values():
        fn()  # warm-up: fonts, imports, caches
    times: dict[str, list] = {name: [] for name in cases}
    # interleaved, so that drift of a shared machine hits every case alike
    for _ in range(runs):
        for name, fn in cases.items():
            gc.collect()
            times[name].append(fn())
    server = statistics.median(t[0] for t in times["esign"])
    device = statistics.median(t[1] for t in times["esign"])
    server_main = statistics.median(t[0] for t in times["esign-main"])
    raw_dry, raw_sized, raw_stock = (statistics.median(times[k]) for k in ("dry", "sized", "stock"))
    return [
        Row("signing", f"{label}: server share of a step (prepare+finish) vs sign_pdf", "ms", server, raw_dry,
            reference_name="sign_pdf, dry-run sizing", target=f"≤ {TARGET}×", met=server <= TARGET * raw_dry,
            extra={"runs": runs, "bytes": len(base)}),
        Row("signing", f"{label}: same, vs sign_pdf with bytes_reserved", "ms", server, raw_sized,
            reference_name="sign_pdf, sized", extra={"runs": runs}),
        Row("signing", f"{label}: same, vs sign_pdf with pyHanko's stock stamp", "ms", server, raw_stock,
            reference_name="sign_pdf, stock stamp, dry run", extra={"runs": runs}),
        Row("signing", f"{label}: same, esign on the main thread (CLI) vs sign_pdf", "ms", server_main, raw_dry,
            reference_name="sign_pdf, dry-run sizing",
            note="asyncio.run on the main thread formats the repr of the finished task's result (the PDF)"),
        Row("signing", f"{label}: device time (softkey RSA-2048), excluded above", "ms", device, None,
            reference_name="", extra={"runs": runs}),
    ]


def profile(kind: str = "p20", runs: int = 10, top: int = 25) -> str:
    """cProfile of esign's prepare and finish on ``kind``: the top entries by cumulative and own time.

    ``prepare_signature`` and ``finish_signature`` hand their coroutines to a
    worker thread, which cProfile does not follow; the coroutines they run are
    profiled here on this thread instead (the same work, without the hand-off).
    """
    import asyncio
    import cProfile
    import pstats

    from esign.signing import deferred
    from esign.signing.backend import SignRequest

    base = inputs.revision(kind, 2, 1)
    step = inputs.step_for("chair", inputs.at(3))
    bundle = inputs.backend().certificate(CREDENTIAL)

    def once(prof: cProfile.Profile | None) -> None:
        if prof:
            prof.enable()
        prepared = asyncio.run(deferred._prepare(base, step.spec, bundle, False))  # type: ignore[arg-type]
        if prof:
            prof.disable()
        value = inputs.backend().sign(SignRequest(credential=CREDENTIAL, tbs=prepared.tbs,
                                                  md_algorithm=prepared.md_algorithm,
                                                  mechanism=prepared.mechanism)).signature
        if prof:
            prof.enable()
        asyncio.run(deferred._finish(prepared, value, bundle, None))
        if prof:
            prof.disable()

    once(None)  # warm-up: the stamp font, the signed-attribute template
    prof = cProfile.Profile()
    for _ in range(runs):
        once(prof)
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out).strip_dirs()
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


def run(quick: bool = False) -> list[Row]:
    runs = 5 if quick else 15
    rows = measure("p1", runs) + measure("p20", runs)
    if not quick:
        rows += measure("scan10", 5)
    return rows


def main() -> None:
    if "--profile" in sys.argv:
        # cProfile sees the thread it runs in: profile on the main thread, 20 pages and the scan
        print(profile("p20"))
        print(profile("scan10", runs=3))
        return
    args = script_args(__doc__.splitlines()[0])
    emit(run(args.quick), args)


if __name__ == "__main__":
    main()
