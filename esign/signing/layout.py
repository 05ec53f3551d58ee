"""The first revision of a document: memo rendering, fields, QR code, upload checks, previews.

``render_memo`` draws an administrative memo in the layout of Decree
30/2020/NĐ-CP (A4, Noto Serif with full Vietnamese coverage) and records where
it left room for the number, the date and the signature stamps.
``prepare_first_revision`` turns any PDF into revision 0 of a signing chain:
every signature and text field of the workflow and the verification QR code,
in one incremental update, so that the first (certification) signature covers
them. Uploaded PDFs get an extra signature page for the fields.
"""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

from fpdf import FPDF
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.generic import pdf_name, pdf_string
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.fields import FieldMDPAction, FieldMDPSpec, SigFieldSpec, append_signature_field

from esign.errors import DocumentTooLarge, InvalidPdf

log = logging.getLogger(__name__)

MM = 72 / 25.4
A4 = (210.0, 297.0)
VN_TZ = timezone(timedelta(hours=7))
#: catalog key written by render_memo: where it left room for fields (JSON)
LAYOUT_KEY = "/EsignLayout"
#: catalog key written by prepare_first_revision: the size of the PDF it started from
ORIGINAL_KEY = "/EsignOriginalSize"
LAYOUT_VERSION = 1

FONT_DIRS = (
    Path(__file__).resolve().parent.parent / "fonts",
    Path("/usr/share/fonts/truetype/noto"),
)
FONT_STYLES = {"": "Regular", "B": "Bold", "I": "Italic", "BI": "BoldItalic"}
FAMILY = "NotoSerif"


def font_file(style: str = "Regular") -> Path:
    """Path of a Noto Serif face (esign/fonts first, then Debian's fonts-noto-core)."""
    for folder in FONT_DIRS:
        candidate = folder / f"NotoSerif-{style}.ttf"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"NotoSerif-{style}.ttf is missing: install fonts-noto-core or put it in esign/fonts/"
    )


@dataclass(frozen=True)
class MemoContent:
    """What a composed memo says; layout decisions stay in :func:`render_memo`."""

    parent_agency: str
    agency: str
    #: the part after the number, e.g. "TTr-UBND"
    number_suffix: str
    place: str
    date: date
    #: e.g. "TỜ TRÌNH"
    doc_type: str
    title: str
    addressee: str
    body: tuple[str, ...]
    recipients: tuple[str, ...]
    signer_authority: str
    signer_title: str
    signer_name: str


#: the order in which signature slots are signed; a lock leaves later slots signable
SLOT_ORDER = {"drafter": 0, "adviser": 1, "chair": 2, "seal": 3}
#: the field locks of the advisory-memo workflow, used when a FieldSlot says lock="auto"
DEFAULT_LOCKS: dict[str, tuple[str, tuple[str, ...]]] = {
    "chair": ("all_except", ("number", "date")),
    "seal": ("all", ()),
}


@dataclass(frozen=True)
class FieldSlot:
    """A field of the workflow: ``kind`` signature|text, ``slot`` drafter|adviser|chair|seal|number|date.

    ``lock`` is the field lock its signature will apply ("all", "all_except"
    with ``lock_except``, or None). It must exist before the certification
    signature (pyHanko and Acrobat refuse a lock added later), so it is written
    into revision 0. "auto" takes the advisory-memo workflow's locks by slot.
    """

    name: str
    kind: str
    slot: str
    lock: str | None = "auto"
    lock_except: tuple[str, ...] = ()

    def effective_lock(self) -> tuple[str | None, tuple[str, ...]]:
        if self.kind != "signature":
            return None, ()
        if self.lock == "auto":
            return DEFAULT_LOCKS.get(self.slot, (None, ()))
        return self.lock, tuple(self.lock_except)


@dataclass(frozen=True)
class PdfInfo:
    pages: int
    size: int
    #: width and height of page 1 in points
    page_size: tuple[float, float]
    title: str = ""
    form_fields: int = 0


@dataclass(frozen=True)
class Region:
    """A rectangle on a page, in PDF points from the bottom-left corner."""

    page: int
    box: tuple[float, float, float, float]

    def to_json(self) -> list[float]:
        return [self.page, *[round(v, 2) for v in self.box]]

    @classmethod
    def from_json(cls, data: Sequence[float]) -> Region:
        page, x1, y1, x2, y2 = data
        return cls(int(page), (float(x1), float(y1), float(x2), float(y2)))


@dataclass
class _Regions:
    """Reserved regions of one rendered page set, in mm from the top-left corner."""

    page_height: float = A4[1]
    slots: dict[str, tuple[int, float, float, float, float]] = field(default_factory=dict)

    def reserve(self, name: str, page: int, x: float, y: float, w: float, h: float) -> None:
        self.slots[name] = (page, x, y, w, h)

    def as_points(self) -> dict[str, Region]:
        out = {}
        for name, (page, x, y, w, h) in self.slots.items():
            bottom = self.page_height - y - h
            out[name] = Region(page, (x * MM, bottom * MM, (x + w) * MM, (bottom + h) * MM))
        return out


# --- drawing with fpdf2 -------------------------------------------------------------------------


class _Pdf(FPDF):
    """fpdf2 with Noto Serif and page numbers from page 2 on (Decree 30: top centre)."""

    def __init__(self, page_size: tuple[float, float] = A4, numbered: bool = True) -> None:
        super().__init__(unit="mm", format=page_size)
        for style, face in FONT_STYLES.items():
            self.add_font(FAMILY, style, str(font_file(face)))
        self.numbered = numbered
        self.set_creator("esign")
        self.set_producer("esign (fpdf2)")
        self.set_lang("vi")

    def header(self) -> None:
        if self.numbered and self.page_no() > 1:
            self.set_font(FAMILY, "", 12)
            self.set_xy(0, 10)
            self.cell(self.w, 6, str(self.page_no()), align="C")
            self.set_y(self.t_margin)


LEFT, RIGHT, TOP, BOTTOM = 30.0, 15.0, 20.0, 25.0
LEFT_COL = (25.0, 75.0)  # x, width of the agency block
RIGHT_COL = (98.0, 100.0)  # x, width of the national motto block
SIGN_COL = (110.0, 85.0)  # x, width of the signer block
CHAIR_BOX = (120.0, 64.0, 30.0)  # x, width, height of the chair's stamp
SEAL_BOX = (80.0, 38.0)  # x, side of the agency seal
STRIP_H = 19.0  # height of the row of drafter and adviser stamps
QR_SIDE = 17.0
SIGNING_AREA_H = 92.0  # vertical room the signer block, seal and stamp strip need


def _line(pdf: FPDF, x_center: float, y: float, width: float) -> None:
    pdf.set_line_width(0.3)
    pdf.line(x_center - width / 2, y, x_center + width / 2, y)


def _centered(pdf: FPDF, x: float, w: float, text: str, style: str, size: float, h: float) -> None:
    pdf.set_font(FAMILY, style, size)
    pdf.set_x(x)
    pdf.multi_cell(w, h, text, align="C", new_x="LMARGIN", new_y="NEXT")


def _review_strip(pdf: FPDF, regions: _Regions, y: float) -> None:
    """Room for the drafter's and the advisers' stamps, across the page."""
    pdf.set_font(FAMILY, "I", 9)
    pdf.set_xy(LEFT, y)
    pdf.cell(0, 4, "Người soạn thảo và người cho ý kiến (ký số):")
    regions.reserve("review", pdf.page_no() - 1, LEFT, y + 5, pdf.w - LEFT - RIGHT, STRIP_H)


def _signing_area(
    pdf: FPDF,
    regions: _Regions,
    *,
    authority: str,
    title: str,
    name: str,
    recipients: Sequence[str],
) -> None:
    """Recipients on the left, the signer block on the right, the stamp strip below."""
    if pdf.get_y() + SIGNING_AREA_H > pdf.h - BOTTOM:
        pdf.add_page()
    top = pdf.get_y() + 4
    page = pdf.page_no() - 1
    # recipients (Nơi nhận), bottom left
    if recipients:
        pdf.set_xy(LEFT, top)
        pdf.set_font(FAMILY, "BI", 12)
        pdf.cell(50, 5.5, "Nơi nhận:", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(FAMILY, "", 11)
        for line in recipients:
            pdf.set_x(LEFT)
            pdf.multi_cell(52, 5, f"- {line}", new_x="LMARGIN", new_y="NEXT")
    # signer block, bottom right
    x, w = SIGN_COL
    pdf.set_y(top)
    for line in [ln for ln in authority.split("\n") if ln.strip()]:
        _centered(pdf, x, w, line, "B", 13, 6)
    if title:
        _centered(pdf, x, w, title, "B", 13, 6)
    sig_top = pdf.get_y() + 2
    cx, cw, ch = CHAIR_BOX
    regions.reserve("chair", page, cx, sig_top, cw, ch)
    sx, side = SEAL_BOX
    regions.reserve("seal", page, sx, sig_top - 2, side, side)
    pdf.set_y(sig_top + ch + 2)
    if name:
        _centered(pdf, x, w, name, "B", 13, 6)
    _review_strip(pdf, regions, max(pdf.get_y(), sig_top + side) + 4)


def _agency_lines(agency: str) -> str:
    """Break "ỦY BAN NHÂN DÂN PHƯỜNG X" after the kind of body, as agencies print it."""
    for prefix in ("ỦY BAN NHÂN DÂN ", "UỶ BAN NHÂN DÂN ", "HỘI ĐỒNG NHÂN DÂN "):
        if agency.startswith(prefix):
            return prefix.strip() + "\n" + agency[len(prefix) :]
    return agency


def render_memo(memo: MemoContent) -> bytes:
    """An A4 memo in the Decree 30/2020 layout, with room left for fields and stamps."""
    pdf = _Pdf()
    pdf.set_margins(LEFT, TOP, RIGHT)
    pdf.set_auto_page_break(True, BOTTOM)
    pdf.set_title(memo.title)
    pdf.set_subject(memo.doc_type)
    pdf.set_creation_date(datetime.combine(memo.date, time(0, 0), tzinfo=VN_TZ))
    regions = _Regions()
    pdf.add_page()

    # agency (top left) and national motto (top right)
    lx, lw = LEFT_COL
    rx, rw = RIGHT_COL
    pdf.set_y(TOP - 5)
    if memo.parent_agency:
        _centered(pdf, lx, lw, memo.parent_agency.upper(), "", 12, 5.5)
    _centered(pdf, lx, lw, _agency_lines(memo.agency.upper()), "B", 12, 5.5)
    left_bottom = pdf.get_y()
    _line(pdf, lx + lw / 2, left_bottom + 0.5, 28)
    pdf.set_y(TOP - 5)
    _centered(pdf, rx, rw, "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", "B", 12, 5.5)
    _centered(pdf, rx, rw, "Độc lập - Tự do - Hạnh phúc", "B", 13, 6)
    right_bottom = pdf.get_y()
    pdf.set_font(FAMILY, "B", 13)
    _line(pdf, rx + rw / 2, right_bottom + 0.5, pdf.get_string_width("Độc lập - Tự do - Hạnh phúc"))

    # number (left) and place/date (right): placeholders that the issue step's fields cover
    row = max(left_bottom, right_bottom) + 4
    pdf.set_font(FAMILY, "", 13)
    pdf.set_xy(lx, row)
    number_line = f"Số:        /{memo.number_suffix}"
    pdf.cell(lw, 7, number_line, align="C")
    # the field starts after "Số: " and covers the blank and the suffix: the value is "12/TTr-UBND"
    field_x = lx + (lw - pdf.get_string_width(number_line)) / 2 + pdf.get_string_width("Số: ")
    regions.reserve("number", 0, field_x, row - 0.5, lx + lw - field_x, 8)
    pdf.set_font(FAMILY, "I", 13)
    pdf.set_xy(rx, row)
    place = f"{memo.place}, " if memo.place else ""
    pdf.cell(rw, 7, f"{place}ngày      tháng      năm {memo.date.year}", align="C")
    regions.reserve("date", 0, rx, row - 0.5, rw, 8)

    # document type, title, addressee
    pdf.set_y(row + 14)
    _centered(pdf, LEFT, pdf.epw, memo.doc_type.upper(), "B", 14, 7)
    _centered(pdf, LEFT + 10, pdf.epw - 20, memo.title, "B", 14, 7)
    _line(pdf, LEFT + pdf.epw / 2, pdf.get_y() + 1, 40)
    pdf.ln(5)
    if memo.addressee:
        _centered(pdf, LEFT, pdf.epw, f"Kính gửi: {memo.addressee}", "", 14, 7)
        pdf.ln(3)

    # body: justified, first-line indent, flows over as many pages as it needs
    pdf.set_font(FAMILY, "", 14)
    with pdf.text_columns(text_align="J", line_height=1.2) as cols:
        for paragraph in memo.body:
            with cols.paragraph(first_line_indent=10, bottom_margin=2.5) as par:
                par.write(paragraph)
    pdf.ln(2)

    _signing_area(
        pdf,
        regions,
        authority=memo.signer_authority,
        title=memo.signer_title,
        name=memo.signer_name,
        recipients=memo.recipients,
    )
    regions.reserve("qr", 0, LEFT, A4[1] - BOTTOM + 3, QR_SIDE, QR_SIDE)
    return _mark_layout(bytes(pdf.output()), regions)


def _mark_layout(pdf: bytes, regions: _Regions) -> bytes:
    """Record the reserved regions in the catalog, so prepare_first_revision uses them."""
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    data = {
        "version": LAYOUT_VERSION,
        "regions": {name: r.to_json() for name, r in regions.as_points().items()},
    }
    writer.root[pdf_name(LAYOUT_KEY)] = pdf_string(json.dumps(data, sort_keys=True))
    writer.update_root()
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _read_layout(reader: PdfFileReader) -> dict[str, Region] | None:
    try:
        raw = reader.root[LAYOUT_KEY]
        data = json.loads(str(raw))
        if data.get("version") != LAYOUT_VERSION:
            return None
        regions = {name: Region.from_json(v) for name, v in data["regions"].items()}
    except (KeyError, ValueError, TypeError):
        return None
    pages = int(reader.root["/Pages"]["/Count"])
    if any(not 0 <= r.page < pages for r in regions.values()):
        return None
    return regions


# --- the first revision --------------------------------------------------------------------------


def _mediabox(writer: IncrementalPdfFileWriter, ix: int) -> tuple[float, float, float, float]:
    page_ref, _ = writer.find_page_for_modification(ix)
    page = page_ref.get_object()
    node = page
    while node is not None:
        if "/MediaBox" in node:
            x1, y1, x2, y2 = (float(v) for v in node["/MediaBox"])
            return min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)
        parent = node.get("/Parent")
        node = parent.get_object() if parent is not None else None
    return 0.0, 0.0, A4[0] * MM, A4[1] * MM


def _fpdf_bytes(pdf: FPDF) -> bytes:
    return bytes(pdf.output())


def _overlay_xobject(writer: IncrementalPdfFileWriter, overlay: bytes) -> generic.IndirectObject:
    return writer.import_page_as_xobject(PdfFileReader(io.BytesIO(overlay)), 0)


def _draw_on_page(
    writer: IncrementalPdfFileWriter,
    ix: int,
    xobject: generic.IndirectObject,
    name: str,
    origin: tuple[float, float],
) -> None:
    # the page's own content may leave the graphics state changed: isolate it first
    before = writer.add_object(generic.StreamObject(stream_data=b"q\n"))
    after = writer.add_object(
        generic.StreamObject(
            stream_data=b"\nQ q 1 0 0 1 %g %g cm /%s Do Q\n" % (origin[0], origin[1], name.encode())
        )
    )
    writer.add_stream_to_page(ix, before, prepend=True)
    writer.add_stream_to_page(
        ix,
        after,
        resources=generic.DictionaryObject(
            {pdf_name("/XObject"): generic.DictionaryObject({pdf_name("/" + name): xobject})}
        ),
    )


def _qr_overlay(
    size_mm: tuple[float, float],
    region_mm: tuple[float, float, float],
    verify_url: str,
    short_code: str,
) -> bytes:
    """A transparent page with the QR code and the verification address beside it."""
    import segno

    x, y, side = region_mm
    pdf = _Pdf(size_mm, numbered=False)
    pdf.set_auto_page_break(False)
    pdf.set_margins(0, 0, 0)
    pdf.set_creation_date(datetime(2020, 1, 1, tzinfo=UTC))
    pdf.add_page()
    qr = segno.make(verify_url, error="m")
    matrix = qr.matrix
    n = len(matrix)
    module = side / n
    pdf.set_fill_color(0, 0, 0)
    for row_ix, row in enumerate(matrix):
        col = 0
        while col < n:
            if row[col]:
                start = col
                while col < n and row[col]:
                    col += 1
                pdf.rect(
                    x + start * module,
                    y + row_ix * module,
                    (col - start) * module,
                    module,
                    style="F",
                )
            else:
                col += 1
    pdf.set_text_color(0, 0, 0)
    tx = x + side + 2
    pdf.set_xy(tx, y + 1)
    pdf.set_font(FAMILY, "B", 8)
    pdf.cell(0, 4, "Văn bản điện tử có ký số. Kiểm tra tại:", new_x="LEFT", new_y="NEXT")
    pdf.set_font(FAMILY, "", 8)
    pdf.cell(0, 4, verify_url, new_x="LEFT", new_y="NEXT")
    pdf.cell(0, 4, f"Mã tra cứu: {short_code}", new_x="LEFT", new_y="NEXT")
    return _fpdf_bytes(pdf)


def _signature_page(fields: Sequence[FieldSlot], short_code: str) -> tuple[bytes, _Regions]:
    """The page added to an uploaded PDF to hold the fields and stamps."""
    pdf = _Pdf(numbered=False)
    pdf.set_margins(LEFT, TOP, RIGHT)
    pdf.set_auto_page_break(False)
    pdf.set_creation_date(datetime(2020, 1, 1, tzinfo=UTC))
    pdf.add_page()
    regions = _Regions()
    _centered(pdf, LEFT, pdf.epw, "TRANG KÝ SỐ", "B", 14, 8)
    _centered(pdf, LEFT, pdf.epw, f"của văn bản có mã tra cứu {short_code}", "I", 12, 6)
    pdf.ln(6)
    slots = {f.slot for f in fields}
    if slots & {"number", "date"}:
        row = pdf.get_y()
        pdf.set_font(FAMILY, "", 13)
        pdf.set_xy(LEFT, row)
        pdf.cell(20, 7, "Số:")
        regions.reserve("number", 0, LEFT + 12, row, 70, 7)
        pdf.set_xy(RIGHT_COL[0], row)
        pdf.set_font(FAMILY, "I", 13)
        regions.reserve("date", 0, RIGHT_COL[0], row, RIGHT_COL[1], 7)
        pdf.set_y(row + 14)
    _signing_area(
        pdf, regions, authority="", title="NGƯỜI CÓ THẨM QUYỀN KÝ", name="", recipients=()
    )
    return _fpdf_bytes(pdf), regions


def _split(region: Region, n: int, gap: float = 3 * MM) -> list[Region]:
    """Cut a horizontal strip into n boxes side by side."""
    x1, y1, x2, y2 = region.box
    width = (x2 - x1 - gap * (n - 1)) / n
    return [
        Region(region.page, (x1 + i * (width + gap), y1, x1 + i * (width + gap) + width, y2))
        for i in range(n)
    ]


def _assign(fields: Sequence[FieldSlot], regions: dict[str, Region]) -> dict[str, Region]:
    """Each field's rectangle, from the reserved regions by slot."""
    placed: dict[str, Region] = {}
    review = [f for f in fields if f.kind == "signature" and f.slot in ("drafter", "adviser")]
    review.sort(key=lambda f: 0 if f.slot == "drafter" else 1)  # drafter first, advisers in order
    if review:
        for f, box in zip(review, _split(regions["review"], len(review)), strict=True):
            placed[f.name] = box
    for f in fields:
        if f.name in placed:
            continue
        key = f.slot if f.slot in regions else None
        if key is None or key == "review":
            raise ValueError(f"no room for field {f.name!r} (slot {f.slot!r})")
        if any(other.slot == f.slot and other.name != f.name for other in fields):
            raise ValueError(f"slot {f.slot!r} holds one field; {f.name!r} shares it")
        placed[f.name] = regions[key]
    return placed


def _acroform(writer: IncrementalPdfFileWriter) -> generic.DictionaryObject:
    root = writer.root
    if "/AcroForm" not in root:
        root[pdf_name("/AcroForm")] = writer.add_object(
            generic.DictionaryObject({pdf_name("/Fields"): generic.ArrayObject()})
        )
        writer.update_root()
    form_ref = root.raw_get("/AcroForm")
    form = root["/AcroForm"]
    if isinstance(form_ref, generic.IndirectObject):
        writer.mark_update(form_ref)
    else:
        writer.update_root()
    return form


#: quadding (/Q) of text fields by slot: 0 left (the number follows "Số:"), 1 centred
TEXT_ALIGN = {"number": 0, "date": 1}


def _add_text_field(
    writer: IncrementalPdfFileWriter, name: str, region: Region, quadding: int = 1
) -> None:
    page_ref, _ = writer.find_page_for_modification(region.page)
    widget = generic.DictionaryObject(
        {
            pdf_name("/Type"): pdf_name("/Annot"),
            pdf_name("/Subtype"): pdf_name("/Widget"),
            pdf_name("/FT"): pdf_name("/Tx"),
            pdf_name("/T"): pdf_string(name),
            pdf_name("/Rect"): generic.ArrayObject(generic.FloatObject(v) for v in region.box),
            pdf_name("/F"): generic.NumberObject(4),  # print
            pdf_name("/P"): page_ref,
            pdf_name("/DA"): pdf_string("/Helv 0 Tf 0 g"),
            pdf_name("/Q"): generic.NumberObject(quadding),
        }
    )
    ref = writer.add_object(widget)
    form = _acroform(writer)
    fields_ref = form.raw_get("/Fields")
    form["/Fields"].append(ref)
    if isinstance(fields_ref, generic.IndirectObject):
        writer.mark_update(fields_ref)
    if "/DR" not in form:
        form[pdf_name("/DR")] = generic.DictionaryObject(
            {
                pdf_name("/Font"): generic.DictionaryObject(
                    {
                        pdf_name("/Helv"): writer.add_object(
                            generic.DictionaryObject(
                                {
                                    pdf_name("/Type"): pdf_name("/Font"),
                                    pdf_name("/Subtype"): pdf_name("/Type1"),
                                    pdf_name("/BaseFont"): pdf_name("/Helvetica"),
                                    pdf_name("/Encoding"): pdf_name("/WinAnsiEncoding"),
                                }
                            )
                        )
                    }
                )
            }
        )
    page = page_ref.get_object()
    annots_ref = page.raw_get("/Annots") if "/Annots" in page else None
    if annots_ref is None:
        page[pdf_name("/Annots")] = generic.ArrayObject([ref])
        writer.mark_update(page_ref)
    elif isinstance(annots_ref, generic.IndirectObject):
        annots_ref.get_object().append(ref)
        writer.mark_update(annots_ref)
    else:
        annots_ref.append(ref)
        writer.mark_update(page_ref)


def field_lock(slot: FieldSlot, fields: Sequence[FieldSlot]) -> FieldMDPSpec | None:
    """The /Lock of a signature field: what its signature will freeze.

    "all_except" locks every field but the exceptions, the field itself and
    the signature fields of later steps, which must stay signable.
    """
    lock, except_ = slot.effective_lock()
    if lock is None:
        return None
    if lock == "all":
        return FieldMDPSpec(FieldMDPAction.ALL)
    if lock != "all_except":
        raise ValueError(f"field {slot.name!r}: unknown lock {lock!r}")
    names = {f.name for f in fields}
    missing = set(except_) - names
    if missing:
        raise ValueError(f"field {slot.name!r}: lock_except names unknown fields {sorted(missing)}")
    order = SLOT_ORDER.get(slot.slot, 0)
    locked = [
        f.name
        for f in fields
        if f.name != slot.name
        and f.name not in except_
        and not (f.kind == "signature" and SLOT_ORDER.get(f.slot, 0) > order)
    ]
    return FieldMDPSpec(FieldMDPAction.INCLUDE, fields=locked)


def prepare_first_revision(
    pdf: bytes, fields: Sequence[FieldSlot], verify_url: str, short_code: str
) -> bytes:
    """Revision 0: every field of the workflow, the QR code and the verification address.

    Memos made by :func:`render_memo` get their fields in the regions it left;
    any other PDF gets a signature page at the end. Everything goes into one
    incremental update so that the first signature covers it. An uploaded file
    that cannot take them (a PDF esign already prepared, a damaged one) is
    refused with :class:`InvalidPdf`.
    """
    try:
        return _prepare_first_revision(pdf, fields, verify_url, short_code)
    except InvalidPdf:
        raise
    except RecursionError as e:
        raise InvalidPdf("This PDF is too deeply nested to be read safely; export it again") from e
    except (PdfError, ValueError, KeyError, TypeError, AttributeError, IndexError) as e:
        if ORIGINAL_KEY.encode() in pdf:
            raise InvalidPdf("This PDF was already prepared by esign; upload the original document") from e
        raise InvalidPdf("This PDF is damaged or incomplete and cannot be read") from e


def _prepare_first_revision(
    pdf: bytes, fields: Sequence[FieldSlot], verify_url: str, short_code: str
) -> bytes:
    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    except (PdfError, ValueError) as e:
        raise InvalidPdf("This PDF is damaged or incomplete and cannot be read") from e
    regions = _read_layout(reader)
    if regions is None:
        page_pdf, page_regions = _signature_page(fields, short_code)
        xobject = _overlay_xobject(writer, page_pdf)
        last = int(reader.root["/Pages"]["/Count"]) - 1
        page = generic.DictionaryObject(
            {
                pdf_name("/Type"): pdf_name("/Page"),
                pdf_name("/MediaBox"): generic.ArrayObject(
                    [
                        generic.NumberObject(0),
                        generic.NumberObject(0),
                        generic.FloatObject(round(A4[0] * MM, 2)),
                        generic.FloatObject(round(A4[1] * MM, 2)),
                    ]
                ),
                pdf_name("/Resources"): generic.DictionaryObject(
                    {
                        pdf_name("/XObject"): generic.DictionaryObject(
                            {pdf_name("/EsignSignaturePage"): xobject}
                        )
                    }
                ),
                pdf_name("/Contents"): writer.add_object(
                    generic.StreamObject(stream_data=b"q /EsignSignaturePage Do Q\n")
                ),
            }
        )
        writer.insert_page(page)
        regions = {name: Region(last + 1, r.box) for name, r in page_regions.as_points().items()}
        x1, y1, x2, y2 = _mediabox(writer, 0)
        # bottom left corner of page 1, inside a 10 mm margin
        size_mm = ((x2 - x1) / MM, (y2 - y1) / MM)
        qr = (10.0, size_mm[1] - 10.0 - QR_SIDE, QR_SIDE)
    else:
        x1, y1, x2, y2 = _mediabox(writer, 0)
        size_mm = ((x2 - x1) / MM, (y2 - y1) / MM)
        q = regions["qr"].box
        qr = (q[0] / MM - x1 / MM, size_mm[1] - (q[3] - y1) / MM, (q[2] - q[0]) / MM)

    overlay = _qr_overlay(size_mm, qr, verify_url, short_code)
    _draw_on_page(writer, 0, _overlay_xobject(writer, overlay), "EsignVerification", (x1, y1))

    placed = _assign(fields, regions)
    for f in fields:
        region = placed[f.name]
        if f.kind == "signature":
            append_signature_field(
                writer,
                SigFieldSpec(
                    sig_field_name=f.name,
                    on_page=region.page,
                    box=tuple(round(v, 2) for v in region.box),
                    field_mdp_spec=field_lock(f, fields),
                ),
            )
        elif f.kind == "text":
            _add_text_field(writer, f.name, region, TEXT_ALIGN.get(f.slot, 1))
        else:
            raise ValueError(f"field {f.name!r}: unknown kind {f.kind!r}")

    writer.root[pdf_name(ORIGINAL_KEY)] = generic.NumberObject(len(pdf))
    writer.update_root()
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def original_of(first_revision: bytes) -> bytes:
    """The PDF that :func:`prepare_first_revision` started from (an uploaded original)."""
    try:
        reader = PdfFileReader(io.BytesIO(first_revision), strict=False)
        size = int(reader.root[ORIGINAL_KEY])
    except (PdfError, KeyError, ValueError, TypeError) as e:
        raise InvalidPdf(
            "This PDF was not prepared by esign: its original cannot be recovered"
        ) from e
    if not 0 < size <= len(first_revision):
        raise InvalidPdf("This PDF was not prepared by esign: its original cannot be recovered")
    return first_revision[:size]


# --- upload checks and previews -------------------------------------------------------------------


def check_pdf(data: bytes, max_bytes: int) -> PdfInfo:
    """Accept an upload as the start of a signing chain, or say why not."""
    if len(data) > max_bytes:
        raise DocumentTooLarge(
            "The file is %(size)s MB; the limit is %(limit)s MB. Reduce it (e.g. scan at a lower "
            "resolution) and upload it again",
            size=f"{len(data) / 1048576:.1f}",
            limit=f"{max_bytes / 1048576:.0f}",
        )
    if not data[:1024].lstrip().startswith(b"%PDF-") and b"%PDF-" not in data[:1024]:
        raise InvalidPdf(
            "This file is not a PDF; export or scan the document as PDF and upload it again"
        )
    try:
        reader = PdfFileReader(io.BytesIO(data), strict=False)
        encrypted = reader.encrypted
    except RecursionError as e:
        raise InvalidPdf("This PDF is too deeply nested to be read safely; export it again") from e
    except Exception as e:  # pyHanko raises many types for damaged files
        raise InvalidPdf(
            "This PDF is damaged or incomplete and cannot be read; export it again"
        ) from e
    if encrypted:
        raise InvalidPdf("This PDF is password-protected or encrypted; upload an unprotected copy")
    try:
        pages = int(reader.root["/Pages"]["/Count"])
        if pages < 1:
            raise InvalidPdf("This PDF has no pages")
        box = _reader_mediabox(reader)
        signed = len(reader.embedded_signatures) > 0
        form = _resolved(reader.root, "/AcroForm")
        fields = len(form["/Fields"]) if form is not None and "/Fields" in form else 0
        info = _resolved(reader.trailer_view, "/Info")
        title = str(info.get("/Title", "")) if isinstance(info, generic.DictionaryObject) else ""
    except InvalidPdf:
        raise
    except RecursionError as e:
        raise InvalidPdf("This PDF is too deeply nested to be read safely; export it again") from e
    except Exception as e:
        raise InvalidPdf(
            "This PDF is damaged or incomplete and cannot be read; export it again"
        ) from e
    if signed:
        raise InvalidPdf(
            "This PDF already carries digital signatures; upload the unsigned original"
        )
    _check_renders(data)
    return PdfInfo(pages=pages, size=len(data), page_size=box, title=title, form_fields=fields)


def _resolved(container: Any, key: str) -> Any:
    """``container[key]`` dereferenced, or None (pyHanko's ``get`` does not dereference)."""
    return container[key] if key in container else None  # noqa: SIM401


def _reader_mediabox(reader: PdfFileReader) -> tuple[float, float]:
    page = reader.root["/Pages"]
    while "/Kids" in page:
        page_box = page.get("/MediaBox")
        page = page["/Kids"][0].get_object()
        if "/MediaBox" not in page and page_box is not None:
            break
    node = page
    while node is not None:
        if "/MediaBox" in node:
            x1, y1, x2, y2 = (float(v) for v in node["/MediaBox"])
            return abs(x2 - x1), abs(y2 - y1)
        parent = node.get("/Parent")
        node = parent.get_object() if parent is not None else None
    return A4[0] * MM, A4[1] * MM


#: pdfium is not thread-safe, not even across documents: one call at a time in a process
#: (two server threads rendering at once aborted the process in a libc++ bounds check)
PDFIUM_LOCK = threading.Lock()


def _check_renders(data: bytes) -> None:
    """A second, independent parser: pdfium must open the file too."""
    if count_pages(data) < 1:
        raise InvalidPdf("This PDF has no pages")


def count_pages(data: bytes) -> int:
    """How many pages pdfium reads in the file, without rendering any."""
    import pypdfium2 as pdfium

    with PDFIUM_LOCK:
        try:
            doc = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as e:
            raise InvalidPdf(
                "This PDF is damaged or incomplete and cannot be read; export it again"
            ) from e
        try:
            return len(doc)
        finally:
            doc.close()


def render_previews(pdf: bytes, width_px: int = 900) -> list[bytes]:
    """A PNG of every page, ``width_px`` wide, with stamps and fields drawn."""
    import pypdfium2 as pdfium

    pages = []
    with PDFIUM_LOCK:
        try:
            doc = pdfium.PdfDocument(pdf)
        except pdfium.PdfiumError as e:
            raise InvalidPdf("This PDF is damaged or incomplete and cannot be read") from e
        try:
            doc.init_forms()
            for ix in range(len(doc)):
                page = doc[ix]
                try:
                    bitmap = page.render(scale=width_px / page.get_width(), may_draw_forms=True)
                    try:
                        pages.append(bitmap.to_pil().copy())  # a copy: the bitmap is pdfium's memory
                    finally:
                        bitmap.close()
                finally:
                    page.close()
        finally:
            doc.close()
    images = []
    for image in pages:  # PNG encoding needs no pdfium: other threads may use it meanwhile
        buf = io.BytesIO()
        image.save(buf, format="PNG", optimize=False)
        images.append(buf.getvalue())
    return images
