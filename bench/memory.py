"""Peak memory signing a 10 MB document: esign against raw pyHanko.

Each case runs in a fresh interpreter. It imports everything, loads the key
and signs a 1-page memo first (as a running server has), reads its
high-water mark (the baseline),
then signs the chair's approval on the ~10 MB scan the drafter certified, and
reports the process's peak RSS (``getrusage(RUSAGE_SELF).ru_maxrss``).

- ``esign-deferred``: what ``esign.signing.deferred`` does today: the
  revision as bytes, prepare (BytesIO), the device signs, finish (BytesIO),
  in a worker thread as in the web server; ``esign-deferred-main``: the same
  on the main thread, as the CLI runs it (see ``common.in_worker_thread``);
- ``esign-service``: the whole service step, ``request_signature`` on a
  SQLite database with the blob store (reads the head, stores the prepared
  PDF, reads it back, finishes, checks the prefix, stores the revision); its
  set-up (upload, people) runs in another process first;
- ``pyhanko-bytesio``: ``sign_pdf`` on ``BytesIO(data)``, output in memory;
- ``pyhanko-inplace``: ``sign_pdf(in_place=True)`` on the open file.

    .venv/bin/python bench/memory.py [--quick]
"""

from __future__ import annotations

import json
import resource
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import inputs
from bench.common import (
    OUT,
    PkiServices,
    Row,
    dev_pki,
    emit,
    in_worker_thread,
    passphrase,
    script_args,
)

KIND = "scan10"
CREDENTIAL = "nguyenthiquynhtrieu-token"
TARGET = 1.2
WORK = OUT / "memory"
CASES = ("esign-deferred", "esign-deferred-main", "esign-service", "pyhanko-bytesio", "pyhanko-inplace")


def _hwm_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _peak_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


#: VmRSS when the measured step starts and the high-water mark before it (set by _baseline)
_BEFORE: dict[str, int] = {}


def _baseline() -> int:
    """The high-water mark before the measured step (returned), then a fresh one for the step.

    A process's high-water mark may come from anything it did before (imports,
    the warm-up): the step's own peak hides under it. Linux resets the mark
    (``/proc/self/clear_refs``), so the step's peak above the RSS it started
    from is measured alike in every case; the process's overall peak stays
    the larger of the two marks.
    """
    hwm = _hwm_kib()
    _BEFORE["hwm"] = hwm
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            _BEFORE["rss"] = int(line.split()[1])
    try:
        Path("/proc/self/clear_refs").write_text("5")
        _BEFORE["reset"] = 1
    except OSError:
        _BEFORE["reset"] = 0
    return hwm


# --- the cases, each in its own process -----------------------------------------------------------


def _esign_sign(data: bytes) -> bytes:
    from esign.signing import deferred
    from esign.signing.backend import SignRequest

    step = inputs.step_for("chair", inputs.at(3))
    bundle = inputs.backend().certificate(CREDENTIAL)
    prepared = deferred.prepare_signature(data, step.spec, bundle)  # type: ignore[arg-type]
    value = inputs.backend().sign(SignRequest(credential=CREDENTIAL, tbs=prepared.tbs)).signature
    return deferred.finish_signature(prepared, value, bundle)


def _warm_up() -> None:
    """One signature on the 1-page memo first, as a running server has done: fonts, key, imports.

    (esign subsets the stamp font once per process; that alone peaks at about
    150 MiB and would hide the document's share.)
    """
    _esign_sign(inputs.revision("p1", 2, 1))


def _case_esign_deferred(src: Path, dst: Path, main_thread: bool = False) -> int:
    """In a worker thread as in the web server, or on the main thread as the CLI runs it."""
    call = (lambda fn: fn()) if main_thread else in_worker_thread
    call(_warm_up)
    baseline = _baseline()
    data = src.read_bytes()
    dst.write_bytes(call(lambda: _esign_sign(data)))
    return baseline


def _raw(src: Path, dst: Path, in_place: bool) -> int:
    import io

    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import signers
    from pyhanko.sign.fields import SigSeedSubFilter

    from esign.signing import deferred

    spec = inputs.step_for("chair", inputs.at(3)).spec
    simple = signers.SimpleSigner.load_pkcs12(str(dev_pki() / f"{CREDENTIAL}.p12"),
                                              passphrase=passphrase().encode())
    meta = signers.PdfSignatureMetadata(field_name="chair", md_algorithm="sha256",
                                        subfilter=SigSeedSubFilter.PADES)
    style = deferred.stamp_style("full", (181.4, 85.0))
    params = {"stamp": deferred.stamp_lines(spec.stamp, "full")}  # type: ignore[attr-defined]
    if in_place:
        shutil.copyfile(src, dst)
    _warm_up()
    small = inputs.revision("p1", 2, 1)
    signers.PdfSigner(meta, simple, stamp_style=style).sign_pdf(
        IncrementalPdfFileWriter(io.BytesIO(small)), existing_fields_only=True, appearance_text_params=params)
    baseline = _baseline()
    signer = signers.PdfSigner(meta, simple, stamp_style=style)
    if in_place:
        with dst.open("r+b") as f:
            signer.sign_pdf(IncrementalPdfFileWriter(f), existing_fields_only=True, in_place=True,
                            appearance_text_params=params)
    else:
        out = signer.sign_pdf(IncrementalPdfFileWriter(io.BytesIO(src.read_bytes())),
                              existing_fields_only=True, appearance_text_params=params)
        dst.write_bytes(out.getvalue())
    return baseline


def _service_settings(folder: Path):  # type: ignore[no-untyped-def]
    from bench.common import ROOT
    from esign.config import load_settings

    pki = dev_pki()
    return load_settings(ROOT / "config.toml", env={}, overrides=service_overrides(folder, pki))


def service_overrides(folder: Path, pki: Path, database_url: str | None = None) -> dict:  # type: ignore[type-arg]
    """Settings for a service context in ``folder`` on the bench PKI (shared with bench/web.py)."""
    import dataclasses

    from bench.common import PKI_PORT, ROOT
    from esign.config import PkiSettings

    pki_table: dict[str, object] = {"trust_roots": [str(pki / "root.cert.pem")], "dev_dir": str(pki)}
    if "services_port" in {f.name for f in dataclasses.fields(PkiSettings)}:
        pki_table["services_port"] = PKI_PORT
    return {
        "app": {"environment": "test", "max_upload_mb": 40},
        "database": {"url": database_url or f"sqlite:///{folder / 'esign.db'}"},
        "storage": {"blobs": str(folder / "blobs"), "previews": str(folder / "previews")},
        "workflows": {"definitions": str(ROOT / "workflows")},
        "pki": pki_table,
        "signing": {"backends": ["softkey"], "seal_backend": "softkey"},
    }


def _service_setup(folder: Path) -> None:
    """A SQLite ward with the scan uploaded and submitted: the chair's approval is next."""
    import logging

    from sqlalchemy import select

    from bench.common import ROOT
    from esign.models import User
    from esign.services import documents, signing
    from esign.services.context import Context
    from esign.services.demo import seed_people
    from esign.services.migrate import upgrade

    logging.disable(logging.WARNING)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    settings = _service_settings(folder)
    upgrade(settings)
    ctx = Context.create(settings)
    seed_people(ctx, ROOT / "keys" / "people.toml")
    with ctx.db.session() as s:
        officer = s.scalar(select(User).where(User.username == "nguyenvana"))
        adviser = s.scalar(select(User).where(User.username == "tranthibinh"))
    doc = documents.upload_document(ctx, officer, title="Hồ sơ quét 10 MB", data=inputs.scan())
    signing.request_signature(ctx, officer, doc, "submit", advisers=["tranthibinh"])
    signing.request_signature(ctx, adviser, doc, "advise")
    (folder / "document").write_text(str(doc))
    ctx.close()


def _case_esign_service(folder: Path) -> int:
    import logging

    from sqlalchemy import select

    from esign.models import User
    from esign.services import signing
    from esign.services.context import Context

    logging.disable(logging.WARNING)
    ctx = Context.create(_service_settings(folder))
    doc = int((folder / "document").read_text())
    with ctx.db.session() as s:
        chair = s.scalar(select(User).where(User.username == "nguyenthiquynhtrieu"))
    ctx.backends["softkey"].certificate(CREDENTIAL)  # the key, before the baseline
    in_worker_thread(_warm_up)
    baseline = _baseline()
    # in a worker thread, as in the web server
    outcome = in_worker_thread(lambda: signing.request_signature(ctx, chair, doc, "approve"))
    assert outcome.status == "completed", outcome
    return baseline


def _case_trace(src: Path, dst: Path) -> dict[str, float]:
    """Where esign's memory goes: tracemalloc's peak of Python allocations in prepare and in finish."""
    import tracemalloc

    from esign.signing import deferred
    from esign.signing.backend import SignRequest

    _warm_up()
    step = inputs.step_for("chair", inputs.at(3))
    bundle = inputs.backend().certificate(CREDENTIAL)
    tracemalloc.start()  # on the main thread, like the esign-deferred-main case
    data = src.read_bytes()
    tracemalloc.reset_peak()
    prepared = deferred.prepare_signature(data, step.spec, bundle)  # type: ignore[arg-type]
    prepare_peak = tracemalloc.get_traced_memory()[1]
    value = inputs.backend().sign(SignRequest(credential=CREDENTIAL, tbs=prepared.tbs)).signature
    tracemalloc.reset_peak()
    out = deferred.finish_signature(prepared, value, bundle)
    finish_peak = tracemalloc.get_traced_memory()[1]
    dst.write_bytes(out)
    return {"prepare_peak_mib": prepare_peak / 1048576, "finish_peak_mib": finish_peak / 1048576,
            "document_mib": len(data) / 1048576}


def child(case: str, src: Path, dst: Path) -> dict[str, int]:
    if case == "esign-trace":
        return _case_trace(src, dst)  # type: ignore[return-value]
    if case == "esign-deferred":
        baseline = _case_esign_deferred(src, dst)
    elif case == "esign-deferred-main":
        baseline = _case_esign_deferred(src, dst, main_thread=True)
    elif case == "esign-service":
        baseline = _case_esign_service(dst)
    elif case == "pyhanko-bytesio":
        baseline = _raw(src, dst, in_place=False)
    elif case == "pyhanko-inplace":
        baseline = _raw(src, dst, in_place=True)
    else:
        raise ValueError(case)
    out = {"baseline_kib": baseline, "peak_kib": max(_peak_kib(), _BEFORE.get("hwm", 0))}
    if _BEFORE.get("reset"):
        out["step_added_kib"] = _hwm_kib() - _BEFORE["rss"]
    return out


def _spawn(args: list[str]) -> dict[str, int]:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, timeout=300,
                         check=False)
    if out.returncode != 0:
        raise RuntimeError(f"memory case {args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(quick: bool = False) -> list[Row]:
    repeats = 1 if quick else 2  # peak RSS varies by about 1 MiB between runs
    src = inputs.chain_path(KIND, 2, 0).with_name(f"{KIND}-s2-v0-r1.pdf")
    inputs.revision(KIND, 2, 1)
    inputs.revision("p1", 2, 1)  # the warm-up's document: made here, never inside a measured process
    WORK.mkdir(parents=True, exist_ok=True)
    with PkiServices():  # the service step checks the signer's certificate over OCSP first
        return _run(src, repeats)


def _run(src: Path, repeats: int) -> list[Row]:
    results: dict[str, list[dict[str, int]]] = {c: [] for c in CASES}
    for _ in range(repeats):
        for case in CASES:
            if case == "esign-service" and results[case]:
                continue  # its set-up costs a ward and an upload: once is enough
            if case == "esign-service":
                folder = WORK / "service"
                subprocess.run([sys.executable, __file__, "--setup", str(folder)], check=True, timeout=300,
                               capture_output=True)
                results[case].append(_spawn(["--case", case, str(src), str(folder)]))
            else:
                results[case].append(_spawn(["--case", case, str(src), str(WORK / f"{case}.pdf")]))
    shutil.rmtree(WORK / "service", ignore_errors=True)
    trace = _spawn(["--case", "esign-trace", str(src), str(WORK / "trace.pdf")])

    def mib(case: str, key: str) -> float:
        return statistics.median(r[key] for r in results[case]) / 1024

    size = src.stat().st_size / 1048576
    rows = []
    for case, ref, ref_name in (
        ("esign-deferred", "pyhanko-bytesio", "sign_pdf, BytesIO"),
        ("esign-deferred", "pyhanko-inplace", "sign_pdf, in place"),
        ("esign-deferred-main", "pyhanko-bytesio", "sign_pdf, BytesIO"),
        ("esign-service", "pyhanko-bytesio", "sign_pdf, BytesIO"),
        ("esign-service", "pyhanko-inplace", "sign_pdf, in place"),
    ):
        peak, ref_peak = mib(case, "peak_kib"), mib(ref, "peak_kib")
        rows.append(Row(
            "memory", f"{size:.1f} MiB scan: peak RSS, {case}", "MiB", peak, ref_peak, reference_name=ref_name,
            target=f"≤ {TARGET}×", met=peak <= TARGET * ref_peak, extra={"repeats": len(results[case])},
        ))
    for case in ("esign-deferred", "esign-deferred-main", "esign-service"):
        added = mib(case, "peak_kib") - mib(case, "baseline_kib")
        ref_added = mib("pyhanko-bytesio", "peak_kib") - mib("pyhanko-bytesio", "baseline_kib")
        in_place = mib("pyhanko-inplace", "peak_kib") - mib("pyhanko-inplace", "baseline_kib")
        rows.append(Row(
            "memory", f"{size:.1f} MiB scan: RSS added above the warm baseline, {case}", "MiB", added, ref_added,
            reference_name="sign_pdf, BytesIO", note=f"in place adds {max(in_place, 0):.1f} MiB",
            extra={"in_place_added_mib": in_place},
        ))
    if all("step_added_kib" in r for runs in results.values() for r in runs):
        for case, ref, ref_name in (
            ("esign-deferred", "pyhanko-bytesio", "sign_pdf, BytesIO"),
            ("esign-deferred", "pyhanko-inplace", "sign_pdf, in place"),
            ("esign-service", "pyhanko-bytesio", "sign_pdf, BytesIO"),
            ("esign-service", "pyhanko-inplace", "sign_pdf, in place"),
        ):
            rows.append(Row(
                "memory", f"{size:.1f} MiB scan: the step's own peak above the RSS it started from, {case}",
                "MiB", mib(case, "step_added_kib"), mib(ref, "step_added_kib"), reference_name=ref_name,
                note="high-water mark reset before the step (clear_refs)",
            ))
    rows.append(Row(
        "memory", f"{size:.1f} MiB scan: tracemalloc peak in esign prepare / finish", "MiB",
        trace["prepare_peak_mib"], trace["finish_peak_mib"], reference_name="finish",
        note="Python allocations (the input bytes included), not RSS", extra=dict(trace),
    ))
    return rows


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--case":
        print(json.dumps(child(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]))))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--setup":
        _service_setup(Path(sys.argv[2]))
        return
    args = script_args(__doc__.splitlines()[0])
    emit(run(args.quick), args)


if __name__ == "__main__":
    main()
