"""Benchmark inputs, made with esign's own flow and cached in bench/out/inputs.

- memos of 1 and 20 pages rendered by ``layout.render_memo``;
- a ~10 MB "scanned" upload (pages of incompressible JPEG noise), which
  ``prepare_first_revision`` gives a signature page, as for any upload;
- signature chains with 1, 2, 4 or 8 signatures: revision 0 carries exactly
  the chain's fields (a custom field list: the advisory memo has only three
  adviser fields), then each signature is prepared, signed by the softkey
  backend and finished by ``esign.signing.deferred``.

Files are keyed by their parameters; delete bench/out/inputs to make them again.

    .venv/bin/python bench/inputs.py      # make the default set and list it
"""

from __future__ import annotations

import io
import random
import sys
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import INPUTS, dev_pki, passphrase

VN = timezone(timedelta(hours=7))
VERIFY_URL = "http://127.0.0.1:5000/v/"
BODY = (
    "Căn cứ Luật Tổ chức chính quyền địa phương ngày 19 tháng 6 năm 2015;",
    (
        "Căn cứ tình hình thực tế tại khu phố 3, nhà văn hóa đã xuống cấp sau mùa mưa, mái tôn bị dột "
        "và hệ thống điện không bảo đảm an toàn;"
    ),
    (
        "Văn phòng kính trình Ủy ban nhân dân phường xem xét, cho chủ trương sửa chữa nhà văn hóa khu phố 3 "
        "với kinh phí dự kiến 120.000.000 đồng từ nguồn ngân sách phường năm 2026."
    ),
    "Kính trình Ủy ban nhân dân phường xem xét, quyết định.",
)
#: the chain's signature fields, in signing order, for each signature count
FIELDS = {
    1: ("drafter",),
    2: ("drafter", "chair"),
    4: ("drafter", "adviser_1", "adviser_2", "chair"),
    8: ("drafter", "adviser_1", "adviser_2", "adviser_3", "adviser_4", "adviser_5", "chair", "seal"),
}
ADVISERS = (
    ("tranthibinh-token", "Trần Thị Bình", "Công chức Tư pháp – Hộ tịch"),
    ("lequangcuong-mobile", "Lê Quang Cường", "Công chức Địa chính – Xây dựng"),
    ("vominhduc-token", "Võ Minh Đức", "Phó Chủ tịch"),
    ("tranthibinh-mobile", "Trần Thị Bình", "Công chức Tư pháp – Hộ tịch"),
    ("lequangcuong-token", "Lê Quang Cường", "Công chức Địa chính – Xây dựng"),
)
PAGES_PER_PARAGRAPH_SET = 0.62  # one BODY block is about this many pages (first guess only)
SCAN_MB = 10


def memo_content(paragraphs: int):  # type: ignore[no-untyped-def]
    from esign.signing.layout import MemoContent

    return MemoContent(
        parent_agency="Ủy ban nhân dân Quận 1",
        agency="Ủy ban nhân dân phường Bến Nghé",
        number_suffix="TTr-UBND",
        place="Bến Nghé",
        date=date(2026, 11, 28),
        doc_type="Tờ trình",
        title="Về việc xin chủ trương sửa chữa nhà văn hóa khu phố 3",
        addressee="Ủy ban nhân dân phường Bến Nghé",
        body=BODY * paragraphs,
        recipients=("Như trên;", "Lưu: VT, VP."),
        signer_authority="TM. ỦY BAN NHÂN DÂN",
        signer_title="CHỦ TỊCH",
        signer_name="Nguyễn Thị Quỳnh Triều",
    )


def _cached(path: Path, make) -> bytes:  # type: ignore[no-untyped-def]
    if path.exists():
        return path.read_bytes()
    data = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return data


def pages_of(pdf: bytes) -> int:
    from pyhanko.pdf_utils.reader import PdfFileReader

    return int(PdfFileReader(io.BytesIO(pdf), strict=False).root["/Pages"]["/Count"])


def memo(pages: int) -> bytes:
    """An unsigned memo of at least ``pages`` pages (1 page: the short memo), esign's template."""

    def make() -> bytes:
        from esign.signing.layout import render_memo

        if pages <= 1:
            return render_memo(memo_content(1))
        paragraphs = max(1, int(pages / PAGES_PER_PARAGRAPH_SET) - 2)
        while True:
            pdf = render_memo(memo_content(paragraphs))
            n = pages_of(pdf)
            if n >= pages:
                return pdf
            paragraphs += max(1, int((pages - n) / PAGES_PER_PARAGRAPH_SET * 0.8))

    return _cached(INPUTS / f"memo-p{pages}.pdf", make)


def scan(megabytes: int = SCAN_MB) -> bytes:
    """An uploaded "scan" of about ``megabytes`` MB: A4 pages of incompressible JPEG noise."""

    def make() -> bytes:
        from fpdf import FPDF
        from PIL import Image

        rng = random.Random(20261128)
        pdf = FPDF(unit="mm", format="A4")
        pdf.set_creation_date(datetime(2026, 11, 28, tzinfo=VN))
        size = (900, 1270)  # about 110 dpi
        n = 0
        total = 0
        while total < megabytes * 1024 * 1024:
            image = Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3))
            buf = io.BytesIO()
            image.save(buf, format="JPEG", quality=85)
            total += buf.tell()
            buf.seek(0)
            pdf.add_page()
            pdf.image(buf, x=0, y=0, w=210, h=297)
            n += 1
        return bytes(pdf.output())

    return _cached(INPUTS / f"scan-{megabytes}mb.pdf", make)


def source(kind: str) -> bytes:
    """The unsigned PDF for ``kind``: "p1", "p20" (memos) or "scan10" (a 10 MB upload)."""
    if kind.startswith("scan"):
        return scan(int(kind[4:].rstrip("mb") or SCAN_MB))
    return memo(int(kind[1:]))


def field_slots(n: int):  # type: ignore[no-untyped-def]
    from esign.signing.layout import FieldSlot

    slots = []
    for name in FIELDS[n]:
        slot = "adviser" if name.startswith("adviser") else name
        slots.append(FieldSlot(name, "signature", slot))
    slots += [FieldSlot("number", "text", "number"), FieldSlot("date", "text", "date")]
    return slots


def first_revision(kind: str, n: int, variant: int = 0) -> bytes:
    """Revision 0 with the fields of an ``n``-signature chain; variants differ in their QR code."""

    def make() -> bytes:
        from esign.signing.layout import prepare_first_revision

        code = f"B{kind}{n}v{variant:04d}"
        return prepare_first_revision(source(kind), field_slots(n), VERIFY_URL + code, code)

    return _cached(INPUTS / f"{kind}-s{n}-v{variant}-r0.pdf", make)


def at(step: int, variant: int = 0) -> datetime:
    return datetime(2026, 11, 28, 8, 0, tzinfo=VN) + timedelta(minutes=10 * step + variant)


@dataclass(frozen=True)
class Step:
    """One signature of a chain: the field, who signs, and the step's spec."""

    field: str
    credential: str
    spec: object  # deferred.SignatureSpec


def step_for(field: str, when: datetime) -> Step:
    """The signature spec esign's advisory-memo workflow would use for ``field``."""
    from esign.signing.deferred import SignatureSpec, StampText

    if field == "drafter":
        return Step(field, "nguyenvana-token", SignatureSpec(
            field, StampText("", "Chuyên viên Văn phòng", "Nguyễn Văn An", when), certify=True,
            reason="Ký và gửi xin ý kiến", location="Bến Nghé"))
    if field.startswith("adviser_"):
        credential, name, title = ADVISERS[int(field.split("_")[1]) - 1]
        return Step(field, credential, SignatureSpec(
            field, StampText("", title, name, when), style="initials", reason="Ký cho ý kiến",
            location="Bến Nghé"))
    if field == "chair":
        return Step(field, "nguyenthiquynhtrieu-token", SignatureSpec(
            field, StampText("TM. ỦY BAN NHÂN DÂN", "CHỦ TỊCH", "Nguyễn Thị Quỳnh Triều", when),
            lock="all_except", lock_except=("number", "date"), reason="Ký phê duyệt", location="Bến Nghé"))
    if field == "seal":
        return Step(field, "agency-seal", SignatureSpec(
            field, StampText("", "ỦY BAN NHÂN DÂN PHƯỜNG BẾN NGHÉ", "ỦY BAN NHÂN DÂN PHƯỜNG BẾN NGHÉ", when),
            style="seal", lock="all",
            fill={"number": "125/TTr-UBND", "date": "Bến Nghé, ngày 28 tháng 11 năm 2026"},
            reason="Cấp số và đóng dấu", location="Bến Nghé"))
    raise ValueError(field)


_BACKEND = None


def backend():  # type: ignore[no-untyped-def]
    """The softkey backend over bench/out/pki (keys loaded once per process)."""
    global _BACKEND
    if _BACKEND is None:
        import logging

        from esign.signing.softkey import SoftkeyBackend

        logging.getLogger("esign.signing.softkey").setLevel(logging.ERROR)
        _BACKEND = SoftkeyBackend(dev_pki(), passphrase())
    return _BACKEND


def sign_step(pdf: bytes, step: Step) -> bytes:
    """esign's deferred flow: prepare, the softkey backend signs the tbs, finish."""
    from esign.signing import deferred
    from esign.signing.backend import SignRequest

    bundle = backend().certificate(step.credential)
    prepared = deferred.prepare_signature(pdf, step.spec, bundle)  # type: ignore[arg-type]
    value = backend().sign(SignRequest(credential=step.credential, tbs=prepared.tbs,
                                       md_algorithm=prepared.md_algorithm,
                                       mechanism=prepared.mechanism)).signature  # type: ignore[union-attr]
    return deferred.finish_signature(prepared, value, bundle)


def revision(kind: str, n: int, k: int, variant: int = 0) -> bytes:
    """Revision ``k`` (0..n) of the ``n``-signature chain on ``kind``: k signatures applied."""
    if k == 0:
        return first_revision(kind, n, variant)
    path = INPUTS / f"{kind}-s{n}-v{variant}-r{k}.pdf"
    if path.exists():
        return path.read_bytes()
    previous = revision(kind, n, k - 1, variant)
    field = FIELDS[n][k - 1]
    return _cached(path, lambda: sign_step(previous, step_for(field, at(k, variant))))


def chain_path(kind: str, n: int, variant: int = 0) -> Path:
    """The file of the complete ``n``-signature chain (made when missing)."""
    revision(kind, n, n, variant)
    return INPUTS / f"{kind}-s{n}-v{variant}-r{n}.pdf"


def main() -> None:
    import time

    for kind in ("p1", "p20", "scan10"):
        t = time.perf_counter()
        data = source(kind)
        print(f"{kind:7} {pages_of(data):3d} pages {len(data) / 1048576:6.2f} MiB ({time.perf_counter() - t:.1f} s)")
    for n in (1, 2, 4, 8):
        t = time.perf_counter()
        path = chain_path("p20", n)
        print(f"p20 chain with {n} signatures: {path.stat().st_size / 1024:.0f} KiB "
              f"({time.perf_counter() - t:.1f} s)")


if __name__ == "__main__":
    main()
