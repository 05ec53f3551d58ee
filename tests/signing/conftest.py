"""Fixtures of the signing tests: a development PKI, the softkey backend, PDFs, independent checks."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
VN = timezone(timedelta(hours=7))
PASSPHRASE = "esign-dev"

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
WORKFLOW_FIELDS = (
    ("drafter", "signature", "drafter"),
    ("adviser_1", "signature", "adviser"),
    ("adviser_2", "signature", "adviser"),
    ("adviser_3", "signature", "adviser"),
    ("chair", "signature", "chair"),
    ("seal", "signature", "seal"),
    ("number", "text", "number"),
    ("date", "text", "date"),
)
VERIFY_URL = "http://127.0.0.1:5000/v/Xk3pQ9rT"
SHORT_CODE = "Xk3pQ9rT"


def load_pki_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_dev_pki", ROOT / "keys" / "make_dev_pki.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# dev_pki and pki_services: tests/conftest.py


@pytest.fixture(scope="session")
def softkey(dev_pki: Path):  # type: ignore[no-untyped-def]
    from esign.signing.softkey import SoftkeyBackend

    return SoftkeyBackend(dev_pki, PASSPHRASE)


@pytest.fixture(scope="session")
def root_cert(dev_pki: Path):  # type: ignore[no-untyped-def]
    from asn1crypto import pem, x509

    return x509.Certificate.load(pem.unarmor((dev_pki / "root.cert.pem").read_bytes())[2])


def memo_content(paragraphs: int = 1):  # type: ignore[no-untyped-def]
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


def field_slots():  # type: ignore[no-untyped-def]
    from esign.signing.layout import FieldSlot

    return [FieldSlot(name, kind, slot) for name, kind, slot in WORKFLOW_FIELDS]


@pytest.fixture(scope="session")
def memo_pdf() -> bytes:
    from esign.signing.layout import render_memo

    return render_memo(memo_content())


@pytest.fixture(scope="session")
def first_revision(memo_pdf: bytes) -> bytes:
    from esign.signing.layout import prepare_first_revision

    return prepare_first_revision(memo_pdf, field_slots(), VERIFY_URL, SHORT_CODE)


def plain_pdf(pages: int = 2, **extra: object) -> bytes:
    """An ordinary PDF as an officer might upload it (not made by esign)."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_creation_date(datetime(2026, 1, 1, tzinfo=VN))
    for key, value in extra.items():
        getattr(pdf, key)(**value)  # type: ignore[operator]
    for n in range(pages):
        pdf.add_page()
        pdf.set_font("Helvetica", size=14)
        pdf.cell(0, 10, f"Uploaded page {n + 1}")
    return bytes(pdf.output())


def at(hour: int = 9, minute: int = 0) -> datetime:
    return datetime(2026, 11, 28, hour, minute, tzinfo=VN)


@pytest.fixture(scope="session")
def sign_step(softkey):  # type: ignore[no-untyped-def]
    """Prepare, let the softkey backend sign the tbs, finish: one revision."""
    from esign.signing import deferred
    from esign.signing.backend import Signed, SignRequest

    def step(pdf: bytes, credential: str, spec: deferred.SignatureSpec) -> bytes:
        bundle = softkey.certificate(credential)
        prepared = deferred.prepare_signature(pdf, spec, bundle)
        answer = softkey.sign(
            SignRequest(
                credential=credential,
                tbs=prepared.tbs,
                md_algorithm=prepared.md_algorithm,
                mechanism=prepared.mechanism,
            )
        )
        assert isinstance(answer, Signed)
        return deferred.finish_signature(prepared, answer.signature, bundle)

    return step


@pytest.fixture(scope="session")
def checks(pdf_checks):  # type: ignore[no-untyped-def]
    """pyHanko validation against the development root, and poppler's pdfsig (tests/conftest.py)."""
    return pdf_checks


StepFn = Callable[[bytes, str, object], bytes]
