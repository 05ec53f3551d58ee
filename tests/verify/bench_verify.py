"""Benchmark: verify_pdf against pyHanko's plain validation loop, and bulk throughput.

.venv/bin/python -m tests.verify.bench_verify [N_FILES]
"""

from __future__ import annotations

import io
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tests.verify import chain as chain_mod
from tests.verify.conftest import _pki_module


def plain_loop(data: bytes, roots: list) -> None:  # type: ignore[type-arg]
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature, validate_pdf_timestamp
    from pyhanko_certvalidator import ValidationContext

    reader = PdfFileReader(io.BytesIO(data), strict=False)
    for emb in reader.embedded_signatures:
        vc = ValidationContext(trust_roots=roots)
        if emb.sig_object_type == "/DocTimeStamp":
            validate_pdf_timestamp(emb, validation_context=vc)
        else:
            validate_pdf_signature(emb, vc)


def main(n_files: int = 40) -> None:
    from esign.verify import TrustStore, verify_many, verify_pdf

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    work = Path(tempfile.mkdtemp(prefix="bench-verify-"))
    port = chain_mod.free_port()
    _pki_module().make_dev_pki(work / "pki", port=port)
    services = chain_mod.PkiServices(work / "pki", port)
    try:
        chain = chain_mod.build_chain(work / "pki", services.tsa_url)
    finally:
        services.close()
    data = chain.final
    trust = TrustStore.from_pem_files([chain.root])
    roots = list(trust.roots)
    plain_loop(data, roots)
    verify_pdf(data, trust)
    ours, theirs, cold = [], [], []
    for _ in range(10):
        t = time.perf_counter()
        plain_loop(data, roots)
        theirs.append(time.perf_counter() - t)
        t = time.perf_counter()
        verify_pdf(data, trust)
        ours.append(time.perf_counter() - t)
        fresh = TrustStore.from_pem_files([chain.root])
        t = time.perf_counter()
        verify_pdf(data, fresh)
        cold.append(time.perf_counter() - t)
    ms = lambda xs: f"median {statistics.median(xs) * 1000:.0f} ms (min {min(xs) * 1000:.0f})"
    print(f"memo with 5 signatures + document timestamp, {len(data)} bytes, 13 revisions")
    print(f"  pyHanko plain loop:             {ms(theirs)}")
    print(f"  verify_pdf, warm TrustStore:    {ms(ours)}")
    print(f"  verify_pdf, fresh TrustStore:   {ms(cold)}")
    folder = work / "archive"
    folder.mkdir()
    for i in range(n_files):
        (folder / f"doc{i:03d}.pdf").write_bytes(data)
    files = sorted(folder.glob("*.pdf"))
    for jobs in (1, 2):
        t = time.perf_counter()
        results = list(verify_many(files, trust, jobs=jobs))
        dt = time.perf_counter() - t
        assert len(results) == n_files
        print(
            f"  verify_many jobs={jobs}: {n_files} files in {dt:.1f} s = {n_files / dt:.1f} files/s"
        )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 40)
