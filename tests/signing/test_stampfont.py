"""The stamp font: esign's own glyph subset keeps pyHanko's look at a fraction of the cost."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest

NAME = "Nguyễn Thị Quỳnh Triều"
STAMP = f"TM. ỦY BAN NHÂN DÂN\nCHỦ TỊCH\nKý bởi: {NAME}\nThời gian ký: 2026-11-28T09:10:00+07:00"


def _gids(face, text: str) -> list[int]:  # type: ignore[no-untyped-def]
    import uharfbuzz as hb

    buf = hb.Buffer()
    buf.add_str(text)
    buf.guess_segment_properties()
    hb.shape(hb.Font(face), buf, None)
    return [info.codepoint for info in buf.glyph_infos]


def test_subset_keeps_the_outlines_of_the_used_glyphs_at_their_ids() -> None:
    from fontTools.ttLib import TTFont

    from esign.signing.layout import font_file
    from esign.signing.stampfont import stamp_font, subset_truetype

    font = stamp_font(str(font_file("Regular")))
    used = _gids(font.shaping, NAME)
    kept = font.tables.closure(used)
    composites = [g for g in used if font.tables.components(g)]
    assert composites, "Vietnamese letters with diacritics are composite glyphs in Noto Serif"
    assert all(set(font.tables.components(g)) <= kept for g in composites)

    original = TTFont(io.BytesIO(font.embedding))
    subset = TTFont(io.BytesIO(subset_truetype(font.tables, used)))
    order = original.getGlyphOrder()
    assert subset.getGlyphOrder() == order  # same glyph ids: the PDF addresses glyphs by id
    src, out = original["glyf"], subset["glyf"]
    for gid, name in enumerate(order):
        a, b = src[name], out[name]
        if gid in kept:
            assert a.numberOfContours == b.numberOfContours
            if a.isComposite():
                assert [(c.glyphName, c.x, c.y) for c in a.components] == [
                    (c.glyphName, c.x, c.y) for c in b.components
                ]
            elif a.numberOfContours:
                assert list(a.coordinates) == list(b.coordinates)
                assert a.program.getBytecode() == b.program.getBytecode()
            assert original["hmtx"][name] == subset["hmtx"][name]
        else:
            assert b.numberOfContours == 0
    assert len(subset_truetype(font.tables, used)) < len(font.embedding) / 4


def _stamped_page(factory, tmp_path: Path, name: str) -> bytes:  # type: ignore[no-untyped-def]
    """A blank A6 page with the chair's stamp drawn in ``factory``'s font, rendered by poppler."""
    from pyhanko.pdf_utils import layout
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.pdf_utils.text import TextBoxStyle
    from pyhanko.pdf_utils.writer import PdfFileWriter
    from pyhanko.stamp import TextStamp, TextStampStyle

    blank = PdfFileWriter()
    blank.insert_page(_page(blank))
    buf = io.BytesIO()
    blank.write(buf)
    writer = IncrementalPdfFileWriter(io.BytesIO(buf.getvalue()))
    style = TextStampStyle(
        stamp_text="%(stamp)s",
        text_box_style=TextBoxStyle(font=factory, font_size=10, leading=12),
        border_width=1,
    )
    TextStamp(
        writer, style, text_params={"stamp": STAMP}, box=layout.BoxConstraints(width=260, height=90)
    ).apply(0, 20, 300)
    out = io.BytesIO()
    writer.write(out)
    pdf = tmp_path / f"{name}.pdf"
    pdf.write_bytes(out.getvalue())
    subprocess.run(["pdftoppm", "-r", "200", "-gray", str(pdf), str(tmp_path / name)], check=True)
    (png,) = tmp_path.glob(f"{name}-*.pgm")
    return png.read_bytes()


def _page(writer):  # type: ignore[no-untyped-def]
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.generic import pdf_name

    return generic.DictionaryObject(
        {
            pdf_name("/Type"): pdf_name("/Page"),
            pdf_name("/MediaBox"): generic.ArrayObject(
                generic.NumberObject(v) for v in (0, 0, 298, 420)
            ),
            pdf_name("/Resources"): generic.DictionaryObject(),
            pdf_name("/Contents"): writer.add_object(generic.StreamObject(stream_data=b"")),
        }
    )


@pytest.mark.filterwarnings(
    "ignore::ResourceWarning"
)  # pyHanko's stock factory leaves the font open
def test_a_stamp_looks_exactly_as_with_pyhankos_own_font_subset(tmp_path: Path) -> None:
    from pyhanko.pdf_utils.font.opentype import GlyphAccumulatorFactory

    from esign.signing.layout import font_file
    from esign.signing.stampfont import StampFontFactory

    stock = _stamped_page(
        GlyphAccumulatorFactory(str(font_file("Regular")), font_size=10), tmp_path, "stock"
    )
    ours = _stamped_page(
        StampFontFactory(str(font_file("Regular")), font_size=10), tmp_path, "ours"
    )
    assert stock == ours
    assert ours.count(0) > 2000  # not a blank page: the border and the text were drawn
