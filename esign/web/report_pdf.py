"""The downloadable verification report: one A4 PDF in Noto Serif, readable in Vietnamese.

Built in the request (labels in the user's language through gettext); the
reasons are printed in both languages, since the report travels to agencies
and courts that may read either.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask_babel import gettext as _
from fpdf import FPDF
from fpdf.enums import XPos, YPos

from esign.signing.layout import font_file
from esign.verify import Report
from esign.web import verdicts

FAMILY = "NotoSerif"


@dataclass(frozen=True)
class Subject:
    """What the report is about: a file someone uploaded, or a document esign holds."""

    file_name: str
    #: for a stored document: its number, issuing agency and title ("" for an upload)
    number: str = ""
    issuer: str = ""
    title: str = ""


class _Pdf(FPDF):
    def __init__(self, footer_text: str) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.footer_text = footer_text
        for style, face in (("", "Regular"), ("B", "Bold"), ("I", "Italic"), ("BI", "BoldItalic")):
            self.add_font(FAMILY, style, str(font_file(face)))
        self.set_margins(18, 16, 18)
        self.set_auto_page_break(True, 18)

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(FAMILY, "", 8)
        self.set_text_color(90, 90, 90)
        self.cell(0, 5, f"{self.footer_text} · {self.page_no()}/{{nb}}", align="C")


def _facts(pdf: _Pdf, rows: list[tuple[str, str]]) -> None:
    label_w = 42
    for name, value in rows:
        if not value:
            continue
        pdf.set_font(FAMILY, "B", 10)
        y = pdf.get_y()
        pdf.multi_cell(label_w, 5.5, name, new_x=XPos.RIGHT, new_y=YPos.TOP)
        pdf.set_font(FAMILY, "", 10)
        pdf.multi_cell(0, 5.5, value, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_y(max(pdf.get_y(), y + 5.5) + 0.8)


def _heading(pdf: _Pdf, text: str) -> None:
    pdf.ln(3)
    pdf.set_font(FAMILY, "B", 12)
    pdf.set_text_color(0, 0, 0)
    pdf.cell(0, 7, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_draw_color(180, 180, 180)
    pdf.line(pdf.l_margin, pdf.get_y(), pdf.w - pdf.r_margin, pdf.get_y())
    pdf.ln(2)


def build_report_pdf(report: Report, subject: Subject, *, checked_at: datetime, timezone: str,
                     lang: str, product: str) -> bytes:
    """The A4 report of ``report`` about ``subject``, checked at ``checked_at``."""
    pdf = _Pdf(f"{product} — {_('Signature verification report')}")
    pdf.alias_nb_pages()
    pdf.set_title(_("Signature verification report"))
    pdf.set_creator(product)
    pdf.add_page()

    pdf.set_font(FAMILY, "B", 15)
    pdf.multi_cell(0, 8, _("SIGNATURE VERIFICATION REPORT").upper(), align="C",
                   new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(FAMILY, "I", 9.5)
    pdf.set_text_color(90, 90, 90)
    pdf.multi_cell(0, 5, _("Made by %(product)s at %(at)s (%(zone)s).", product=product,
                           at=verdicts.local_time(checked_at, timezone), zone=timezone),
                   align="C", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_text_color(0, 0, 0)

    _heading(pdf, _("File"))
    _facts(pdf, [
        (_("Document number"), subject.number),
        (_("Issuing agency"), subject.issuer),
        (_("Subject"), subject.title),
        (_("File name"), subject.file_name),
        ("SHA-256", report.file_sha256),
        (_("Size"), _("%(n)s bytes", n=f"{report.size:,}".replace(",", "."))),
        (_("Revisions"), str(report.revisions)),
        (_("Checked at"), verdicts.local_time(checked_at, timezone)),
    ])

    _heading(pdf, _("Verdict"))
    tone = verdicts.tone(report.verdict)
    r, g, b = verdicts.TONE_RGB[tone]
    pdf.set_fill_color(r, g, b)
    pdf.set_text_color(255, 255, 255)
    pdf.set_font(FAMILY, "B", 14)
    pdf.cell(0, 11, "  " + verdicts.verdict_name(report.verdict), fill=True,
             new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_text_color(0, 0, 0)
    pdf.set_fill_color(255, 255, 255)
    pdf.set_font(FAMILY, "", 10)
    pdf.ln(1.5)
    pdf.multi_cell(0, 5.5, verdicts.verdict_summary(report.verdict), new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    for title, reasons, note in ((_("Reasons"), verdicts.grouped(report.reasons, lang), False),
                                 (_("Notes"), verdicts.grouped(report.info, lang), True)):
        if not reasons:
            continue
        _heading(pdf, title)
        for reason in reasons:
            where = f" ({reason.fields})" if reason.fields else ""
            pdf.set_font(FAMILY, "I" if note else "", 10)
            pdf.multi_cell(0, 5.5, "• " + reason.text + where, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            pdf.set_font(FAMILY, "I", 8.5)
            pdf.set_text_color(90, 90, 90)
            for line in (reason.other, reason.detail):
                if line:
                    pdf.set_x(pdf.l_margin + 4)
                    pdf.multi_cell(0, 4.5, line, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            pdf.set_text_color(0, 0, 0)
            pdf.ln(1)

    _heading(pdf, _("Signatures"))
    rows = verdicts.signature_rows(report, timezone)
    if not rows:
        pdf.set_font(FAMILY, "I", 10)
        pdf.cell(0, 6, _("The file carries no signature."), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    else:
        pdf.set_font(FAMILY, "", 8)
        pdf.set_draw_color(170, 170, 170)
        headings = (_("Field"), _("Signer"), _("Issued by"), _("Signed at"), _("Timestamp"), _("Kind"),
                    _("Revocation"), _("Changes after"), _("Result"))
        with pdf.table(col_widths=(14, 22, 22, 15, 15, 15, 14, 17, 17), line_height=4.2,
                       text_align="LEFT", first_row_as_headings=True,
                       headings_style=_heading_style()) as table:
            table.row(headings)
            for row in rows:
                signer = row["signer"] + (f" ({row['signer_title']})" if row["signer_title"] else "")
                table.row((row["field"], signer, row["issuer"], row["signed_at"], row["timestamp"] or "—",
                           row["kind"], row["revocation"], row["modification"] or "—", row["verdict_name"]))
    pdf.ln(4)
    pdf.set_font(FAMILY, "I", 8.5)
    pdf.set_text_color(90, 90, 90)
    pdf.multi_cell(0, 4.5, _("Times are those claimed by the signer; a timestamp is proven by a timestamp "
                             "authority. Trusted roots: those configured on this server."),
                   new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    return bytes(pdf.output())


def _heading_style():  # type: ignore[no-untyped-def]
    from fpdf.fonts import FontFace

    return FontFace(family=FAMILY, emphasis="BOLD", fill_color=(235, 235, 235))
