"""Memo rendering, the first revision, upload checks and previews."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest
from pyhanko.pdf_utils.reader import PdfFileReader

from esign.errors import DocumentTooLarge, InvalidPdf
from esign.signing import layout

from .conftest import SHORT_CODE, VERIFY_URL, field_slots, memo_content, plain_pdf


def _text(pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / "doc.pdf"
    path.write_bytes(pdf)
    return subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout


def _fields(pdf: bytes) -> dict[str, object]:
    reader = PdfFileReader(io.BytesIO(pdf))
    return {
        str(ref.get_object()["/T"]): ref.get_object() for ref in reader.root["/AcroForm"]["/Fields"]
    }


def test_render_memo_prints_vietnamese_with_an_embedded_font(
    memo_pdf: bytes, tmp_path: Path
) -> None:
    text = _text(memo_pdf, tmp_path)
    for phrase in (
        "Nguyễn Thị Quỳnh Triều",
        "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM",
        "Độc lập - Tự do - Hạnh phúc",
        "TỜ TRÌNH",
        "Về việc xin chủ trương sửa chữa nhà văn hóa khu phố 3",
        "Nơi nhận:",
        "TM. ỦY BAN NHÂN DÂN",
        "/TTr-UBND",
        "Kính gửi: Ủy ban nhân dân phường Bến Nghé",
    ):
        assert phrase in text
    (tmp_path / "memo.pdf").write_bytes(memo_pdf)
    fonts = subprocess.run(
        ["pdffonts", str(tmp_path / "memo.pdf")], capture_output=True, text=True, check=True
    ).stdout
    # every font is embedded Noto Serif: no fallback glyphs for the stacked diacritics
    rows = fonts.splitlines()[2:]
    assert rows and all("NotoSerif" in row and " yes " in row for row in rows)


def test_render_memo_draws_the_diacritics(memo_pdf: bytes, tmp_path: Path) -> None:
    (tmp_path / "memo.pdf").write_bytes(memo_pdf)
    subprocess.run(
        [
            "pdftoppm",
            "-r",
            "50",
            "-png",
            "-f",
            "1",
            "-l",
            "1",
            str(tmp_path / "memo.pdf"),
            str(tmp_path / "page"),
        ],
        check=True,
    )
    png = next(tmp_path.glob("page*.png"))
    from PIL import Image

    with Image.open(png) as image:
        assert image.size[0] > 400
        # the page is not blank: plenty of dark pixels
        dark = sum(image.convert("L").histogram()[:128])
        assert dark > 2000


def test_render_memo_flows_a_long_body_over_pages() -> None:
    pdf = layout.render_memo(memo_content(paragraphs=12))
    reader = PdfFileReader(io.BytesIO(pdf))
    pages = int(reader.root["/Pages"]["/Count"])
    assert pages >= 3
    regions = layout._read_layout(reader)
    assert regions is not None
    assert regions["chair"].page == pages - 1
    assert regions["qr"].page == 0 and regions["number"].page == 0


def test_first_revision_has_every_field_and_the_qr_code(
    memo_pdf: bytes, first_revision: bytes, tmp_path: Path
) -> None:
    assert first_revision.startswith(memo_pdf)
    fields = _fields(first_revision)
    assert set(fields) == {
        "drafter",
        "adviser_1",
        "adviser_2",
        "adviser_3",
        "chair",
        "seal",
        "number",
        "date",
    }
    assert {name for name, f in fields.items() if f["/FT"] == "/Sig"} == {
        "drafter",
        "adviser_1",
        "adviser_2",
        "adviser_3",
        "chair",
        "seal",
    }
    assert fields["number"]["/FT"] == "/Tx" and "/V" not in fields["number"]
    # the locks are written before the first signature covers them
    assert fields["seal"]["/Lock"]["/Action"] == "/All"
    chair_lock = fields["chair"]["/Lock"]
    assert chair_lock["/Action"] == "/Include"
    assert {str(n) for n in chair_lock["/Fields"]} == {
        "drafter",
        "adviser_1",
        "adviser_2",
        "adviser_3",
    }
    text = _text(first_revision, tmp_path)
    assert VERIFY_URL in text and f"Mã tra cứu: {SHORT_CODE}" in text
    reader = PdfFileReader(io.BytesIO(first_revision))
    assert reader.embedded_signatures == []
    page1 = reader.root["/Pages"]["/Kids"][0].get_object()
    assert "/EsignVerification" in page1["/Resources"]["/XObject"]


def test_uploaded_pdf_gets_a_signature_page(tmp_path: Path) -> None:
    original = plain_pdf(pages=2)
    r0 = layout.prepare_first_revision(original, field_slots(), VERIFY_URL, SHORT_CODE)
    reader = PdfFileReader(io.BytesIO(r0))
    assert int(reader.root["/Pages"]["/Count"]) == 3
    last_page = reader.root["/Pages"]["/Kids"][2]
    fields = _fields(r0)
    assert all(f["/P"] == last_page for f in fields.values())
    text = _text(r0, tmp_path)
    assert "TRANG KÝ SỐ" in text and VERIFY_URL in text and "Uploaded page 1" in text
    assert layout.original_of(r0) == original


def test_check_pdf_accepts_an_ordinary_pdf() -> None:
    info = layout.check_pdf(plain_pdf(pages=2), 10 * 2**20)
    assert info.pages == 2 and info.size > 0
    assert round(info.page_size[0]) == 595


@pytest.mark.parametrize(
    "data", [b"", b"Hello, this is a Word file", b"\x89PNG\r\n\x1a\n" + b"\0" * 100]
)
def test_check_pdf_refuses_what_is_not_a_pdf(data: bytes) -> None:
    with pytest.raises(InvalidPdf, match="not a PDF"):
        layout.check_pdf(data, 2**20)


def test_check_pdf_refuses_a_truncated_pdf() -> None:
    data = plain_pdf(pages=3)
    with pytest.raises(InvalidPdf, match="damaged or incomplete"):
        layout.check_pdf(data[: len(data) // 2], 2**20)


def test_check_pdf_refuses_an_encrypted_pdf() -> None:
    data = plain_pdf(pages=1, set_encryption={"owner_password": "owner", "user_password": "user"})
    with pytest.raises(InvalidPdf, match="encrypted"):
        layout.check_pdf(data, 2**20)


def test_check_pdf_refuses_a_file_over_the_limit() -> None:
    with pytest.raises(DocumentTooLarge, match="limit is 1 MB"):
        layout.check_pdf(b"%PDF-1.7\n" + b"0" * (2**20 + 1), 2**20)


def test_check_pdf_refuses_an_already_signed_pdf(first_revision: bytes, sign_step) -> None:  # type: ignore[no-untyped-def]
    from esign.signing import deferred

    from .conftest import at

    signed = sign_step(
        first_revision,
        "nguyenvana-token",
        deferred.SignatureSpec(
            "drafter",
            deferred.StampText("", "Chuyên viên Văn phòng", "Nguyễn Văn An", at()),
            certify=True,
        ),
    )
    with pytest.raises(InvalidPdf, match="already carries digital signatures"):
        layout.check_pdf(signed, 2**22)


def test_render_previews_gives_one_png_per_page(first_revision: bytes) -> None:
    images = layout.render_previews(first_revision, width_px=300)
    assert len(images) == 1
    from PIL import Image

    with Image.open(io.BytesIO(images[0])) as image:
        assert image.format == "PNG" and image.size[0] == 300


def test_pdfium_used_from_many_threads_at_once_gives_the_same_pages(first_revision: bytes) -> None:
    # the web server's threads render previews and check uploads concurrently; pdfium is not
    # thread-safe (unserialised, valid files were called damaged and pages came out different)
    import threading

    pdf = plain_pdf(pages=6)
    expected = {"memo": layout.render_previews(first_revision, 300), "upload": layout.render_previews(pdf, 300)}
    problems: list[str] = []

    def work() -> None:
        for _ in range(6):
            try:
                layout._check_renders(pdf)
                if layout.render_previews(pdf, 300) != expected["upload"]:
                    problems.append("upload pages differ")
                if layout.render_previews(first_revision, 300) != expected["memo"]:
                    problems.append("memo pages differ")
            except InvalidPdf as e:
                problems.append(str(e))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert problems == []
