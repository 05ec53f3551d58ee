"""Time one approval signature on a 20-page memo: esign's prepare+finish vs pyHanko's sign_pdf.

Not a test (pytest does not collect it): run
``.venv/bin/python -m tests.signing.bench_approval [PKI_DIR]``; it prints medians.
"""

from __future__ import annotations

import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import signers
from pyhanko.sign.fields import SigSeedSubFilter

from esign.signing import deferred, layout
from esign.signing.backend import SignRequest
from esign.signing.softkey import SoftkeyBackend

from .conftest import (
    PASSPHRASE,
    SHORT_CODE,
    VERIFY_URL,
    at,
    field_slots,
    load_pki_module,
    memo_content,
)

RUNS = 7


def _median(fn) -> float:  # type: ignore[no-untyped-def]
    fn()  # warm-up: fonts, keys, imports
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(pki: Path) -> None:
    backend = SoftkeyBackend(pki, PASSPHRASE)
    paragraphs = 40
    while True:  # grow the body until the memo has 20 pages
        pdf = layout.render_memo(memo_content(paragraphs=paragraphs))
        pages = layout.check_pdf(pdf, 2**30).pages
        if pages >= 20:
            break
        paragraphs += 2
    r0 = layout.prepare_first_revision(pdf, field_slots(), VERIFY_URL, SHORT_CODE)
    drafter = deferred.SignatureSpec(
        "drafter",
        deferred.StampText("", "Chuyên viên Văn phòng", "Nguyễn Văn An", at()),
        certify=True,
    )
    bundle = backend.certificate("nguyenvana-token")
    prep = deferred.prepare_signature(r0, drafter, bundle)
    value = backend.sign(SignRequest(credential="nguyenvana-token", tbs=prep.tbs)).signature
    base = deferred.finish_signature(prep, value, bundle)
    print(f"input: {pages} pages, {len(base) / 1024:.0f} KiB, certified by the drafter")

    credential = "nguyenthiquynhtrieu-token"
    chair = deferred.SignatureSpec(
        "chair",
        deferred.StampText("TM. ỦY BAN NHÂN DÂN", "CHỦ TỊCH", "Nguyễn Thị Quỳnh Triều", at(10)),
        lock="all_except",
        lock_except=("number", "date"),
    )
    chair_bundle = backend.certificate(credential)

    def esign_flow() -> bytes:
        p = deferred.prepare_signature(base, chair, chair_bundle)
        v = backend.sign(SignRequest(credential=credential, tbs=p.tbs)).signature
        return deferred.finish_signature(p, v, chair_bundle)

    simple = signers.SimpleSigner.load_pkcs12(
        str(pki / f"{credential}.p12"), passphrase=PASSPHRASE.encode()
    )
    assert simple is not None
    meta = signers.PdfSignatureMetadata(
        field_name="chair", md_algorithm="sha256", subfilter=SigSeedSubFilter.PADES
    )

    def raw(bytes_reserved: int | None = None, style=None):  # type: ignore[no-untyped-def]
        def run() -> bytes:
            w = IncrementalPdfFileWriter(io.BytesIO(base))
            params = {"stamp": deferred.stamp_lines(chair.stamp, "full")} if style else None
            out = signers.PdfSigner(meta, simple, stamp_style=style).sign_pdf(
                w,
                existing_fields_only=True,
                bytes_reserved=bytes_reserved,
                appearance_text_params=params,
            )
            return out.getvalue()

        return run

    ours = _median(esign_flow)
    raw_default = _median(raw())
    raw_sized = _median(raw(deferred.bytes_reserved(chair_bundle)))
    same_stamp = deferred.stamp_style("full", (181.4, 85.0))
    raw_same = _median(raw(None, same_stamp))
    print(f"esign prepare+sign+finish (Noto stamp, sized):  {ours * 1000:7.1f} ms")
    print(f"pyHanko sign_pdf, default stamp, dry run:       {raw_default * 1000:7.1f} ms")
    print(f"pyHanko sign_pdf, default stamp, sized:         {raw_sized * 1000:7.1f} ms")
    print(f"pyHanko sign_pdf, same Noto stamp, dry run:     {raw_same * 1000:7.1f} ms")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(load_pki_module().make_dev_pki(Path(tmp)))
