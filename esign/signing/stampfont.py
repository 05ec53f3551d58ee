"""The font of visible stamps: Noto Serif cut to the stamp repertoire once, a glyph subset per stamp.

pyHanko's :class:`GlyphAccumulator` shapes a stamp's text with HarfBuzz and
embeds a subset of the font with the glyphs it used. Done the stock way, for
every signature, it opens the 600 KB font, and fontTools decompiles the
layout tables (GSUB, GPOS) only to drop them: about three quarters of the
server's share of a signing step. Here, once per process and face:

- the font is cut down to :data:`STAMP_UNICODES` (Latin, Vietnamese,
  punctuation) with its layout tables, which HarfBuzz needs to stack
  Vietnamese diacritics (``shaping``);
- the same font without layout tables is parsed into its tables and glyph
  offsets (``embedding``): the shaped text already carries every glyph's
  position, so the PDF needs only outlines and metrics.

For each stamp, :func:`subset_truetype` copies the used glyphs (and the
components of composite glyphs) into a font of the same glyph ids, which the
PDF addresses directly (CIDToGIDMap /Identity), as fontTools' subsetter with
``retain_gids`` would: same outlines, same hinting programs, same metrics.
"""

from __future__ import annotations

import functools
import io
import itertools
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.font.opentype import (
    CIDFontType2,
    GlyphAccumulator,
    GlyphAccumulatorFactory,
)
from pyhanko.pdf_utils.generic import pdf_name

#: what stamps print: Latin, Vietnamese (Latin Extended Additional), combining marks, punctuation
STAMP_UNICODES = (
    *range(0x20, 0x7F),
    *range(0xA0, 0x250),
    *range(0x300, 0x370),
    *range(0x1E00, 0x1F00),
    *range(0x2000, 0x2070),
    0x20AB,
)
LAYOUT_TABLES = ("GSUB", "GPOS", "GDEF")

# composite glyph flags (OpenType 'glyf')
_ARG_WORDS = 0x0001
_HAVE_SCALE = 0x0008
_MORE_COMPONENTS = 0x0020
_HAVE_XY_SCALE = 0x0040
_HAVE_TWO_BY_TWO = 0x0080


@dataclass(frozen=True)
class TrueTypeTables:
    """A TrueType font as raw tables, with each glyph's slice of 'glyf'."""

    tables: dict[bytes, bytes]
    #: (start, end) of every glyph id in tables[b"glyf"]
    glyphs: tuple[tuple[int, int], ...]

    @classmethod
    def parse(cls, data: bytes) -> TrueTypeTables:
        version, count = struct.unpack_from(">IH", data, 0)
        if version not in (0x00010000, 0x74727565):  # 'true'
            raise ValueError("not a TrueType font (glyf outlines)")
        tables = {}
        for i in range(count):
            tag, _checksum, offset, length = struct.unpack_from(">4sIII", data, 12 + 16 * i)
            tables[tag] = data[offset : offset + length]
        glyph_count = struct.unpack_from(">H", tables[b"maxp"], 4)[0]
        long_offsets = struct.unpack_from(">h", tables[b"head"], 50)[0] == 1
        loca = tables[b"loca"]
        if long_offsets:
            offsets = struct.unpack_from(f">{glyph_count + 1}I", loca)
        else:
            offsets = tuple(2 * v for v in struct.unpack_from(f">{glyph_count + 1}H", loca))
        return cls(tables, tuple(itertools.pairwise(offsets)))

    def components(self, gid: int) -> list[int]:
        """Glyph ids a composite glyph is made of (empty for a simple glyph)."""
        start, end = self.glyphs[gid]
        glyf = self.tables[b"glyf"]
        if end - start < 10 or struct.unpack_from(">h", glyf, start)[0] >= 0:
            return []
        out = []
        pos = start + 10
        while True:
            flags, component = struct.unpack_from(">HH", glyf, pos)
            out.append(component)
            pos += 4 + (4 if flags & _ARG_WORDS else 2)
            if flags & _HAVE_SCALE:
                pos += 2
            elif flags & _HAVE_XY_SCALE:
                pos += 4
            elif flags & _HAVE_TWO_BY_TWO:
                pos += 8
            if not flags & _MORE_COMPONENTS:
                return out

    def closure(self, gids: Iterable[int]) -> set[int]:
        """``gids``, glyph 0 and every component they are built from."""
        todo = [0, *(g for g in gids if 0 <= g < len(self.glyphs))]
        seen: set[int] = set()
        while todo:
            gid = todo.pop()
            if gid in seen:
                continue
            seen.add(gid)
            todo.extend(c for c in self.components(gid) if c < len(self.glyphs))
        return seen


def _checksum(data: bytes) -> int:
    padded = data + b"\0" * (-len(data) % 4)
    return sum(struct.unpack(f">{len(padded) // 4}I", padded)) & 0xFFFFFFFF


def _blank_metrics(font: TrueTypeTables, keep: set[int]) -> bytes:
    """'hmtx' with zero metrics for the glyphs left out (the PDF's /W gives the widths)."""
    long_metrics = struct.unpack_from(">H", font.tables[b"hhea"], 34)[0]
    hmtx = bytearray(len(font.tables[b"hmtx"]))
    src = font.tables[b"hmtx"]
    for gid in keep:
        at, size = (
            (4 * gid, 4) if gid < long_metrics else (4 * long_metrics + 2 * (gid - long_metrics), 2)
        )
        hmtx[at : at + size] = src[at : at + size]
    return bytes(hmtx)


def subset_truetype(font: TrueTypeTables, gids: Iterable[int]) -> bytes:
    """A font file keeping the outlines of ``gids`` (and their components) at the same glyph ids.

    Every other glyph is left empty; the other tables are copied unchanged
    (their maxima and bounding box stay valid upper bounds).
    """
    keep = font.closure(gids)
    glyf_src = font.tables[b"glyf"]
    glyf = bytearray()
    offsets = [0]
    for gid, (start, end) in enumerate(font.glyphs):
        if gid in keep and end > start:
            glyf += glyf_src[start:end]
            glyf += b"\0" * (-len(glyf) % 4)
        offsets.append(len(glyf))
    tables = dict(font.tables)
    tables[b"hmtx"] = _blank_metrics(font, keep)
    tables[b"glyf"] = bytes(glyf)
    tables[b"loca"] = struct.pack(f">{len(offsets)}I", *offsets)
    head = bytearray(tables[b"head"])
    struct.pack_into(">I", head, 8, 0)  # checkSumAdjustment, set below
    struct.pack_into(">h", head, 50, 1)  # indexToLocFormat: long offsets
    tables[b"head"] = bytes(head)

    tags = sorted(tables)
    count = len(tags)
    selector = count.bit_length() - 1
    search = (1 << selector) * 16
    header = struct.pack(">IHHHH", 0x00010000, count, search, selector, count * 16 - search)
    directory = bytearray()
    body = bytearray()
    offset = 12 + 16 * count
    head_at = 0
    for tag in tags:
        data = tables[tag]
        if tag == b"head":
            head_at = offset + len(body)
        directory += struct.pack(">4sIII", tag, _checksum(data), offset + len(body), len(data))
        body += data + b"\0" * (-len(data) % 4)
    out = bytearray(header) + directory + body
    struct.pack_into(">I", out, head_at + 8, (0xB1B0AFBA - _checksum(bytes(out))) & 0xFFFFFFFF)
    return bytes(out)


@dataclass(frozen=True)
class StampFont:
    """One face cut to :data:`STAMP_UNICODES`, shared read-only by every stamp of the process."""

    shaping: Any  # uharfbuzz.Face, with the layout tables
    #: the same font, same glyph ids, without layout tables
    embedding: bytes
    tables: TrueTypeTables
    #: ``embedding`` parsed, with every table pyHanko reads already loaded (no lazy loading later)
    tt: Any
    ps_name: str
    #: advance width of every glyph id
    advances: tuple[int, ...]
    #: glyph name -> code points, for the text extraction map of multi-glyph clusters
    reverse_cmap: dict[str, set[int]]


@functools.lru_cache(maxsize=8)
def stamp_font(path: str) -> StampFont:
    """The cut-down font of ``path``, made once per process (about a second of fontTools)."""
    import uharfbuzz as hb
    from fontTools import subset
    from fontTools.ttLib import TTFont
    from pyhanko.pdf_utils.font.opentype import _read_ps_name

    options = subset.Options()
    options.layout_features = ["*"]  # keep mark positioning: stacked Vietnamese diacritics
    options.name_IDs = ["*"]
    options.notdef_outline = True
    with TTFont(path) as font:
        subsetter = subset.Subsetter(options)
        subsetter.populate(unicodes=STAMP_UNICODES)
        subsetter.subset(font)
        shaping = io.BytesIO()
        font.save(shaping)
        for tag in LAYOUT_TABLES:
            if tag in font:
                del font[tag]
        # names a PDF font program needs: family, style, unique id, full and PostScript name
        font["name"].names = [n for n in font["name"].names if n.nameID <= 6]
        embedding = io.BytesIO()
        font.save(embedding)
    tt = TTFont(io.BytesIO(embedding.getvalue()))
    order = tt.getGlyphOrder()
    # glyph ids must mean the same glyphs in both (the names of a 'post' 3.0 font are made up)
    with TTFont(io.BytesIO(shaping.getvalue())) as check:
        if check.getGlyphOrder() != order or check["hmtx"].metrics != tt["hmtx"].metrics:
            raise RuntimeError(f"{path}: glyphs moved when the layout tables were dropped")
    for tag in ("head", "hhea", "OS/2", "post", "name", "cmap", "hmtx", "maxp"):
        tt[tag]  # loaded now: afterwards the font is only read, from any thread
    hmtx = tt["hmtx"]
    return StampFont(
        shaping=hb.Face(shaping.getvalue()),
        embedding=embedding.getvalue(),
        tables=TrueTypeTables.parse(embedding.getvalue()),
        tt=tt,
        ps_name=_read_ps_name(tt),
        advances=tuple(hmtx[name][0] for name in order),
        reverse_cmap=tt["cmap"].buildReversed(),
    )


class _StampCIDFont(CIDFontType2):
    """The CID font of one stamp; its font file holds only the glyphs the stamp used."""

    def __init__(self, font: StampFont, subset_prefix: str, owner: StampGlyphs) -> None:
        super().__init__(font.tt, font.ps_name, subset_prefix)
        self._owner = owner

    def set_font_file(self, writer: Any) -> generic.IndirectObject:
        owner = self._owner
        stream = generic.StreamObject(
            stream_data=subset_truetype(owner.font.tables, owner.used_glyphs())
        )
        stream.compress()
        ref = writer.add_object(stream)
        self._font_descriptor[pdf_name("/FontFile2")] = ref
        return ref


class StampGlyphs(GlyphAccumulator):
    """pyHanko's glyph accumulator over a shared :class:`StampFont`.

    pyHanko's constructor parses the font again for every stamp (its glyph
    names alone took about 6 ms); this one takes everything from the shared,
    already parsed font and sets what pyHanko's methods read. It shapes with
    the layout tables and embeds with :func:`subset_truetype` instead of
    fontTools' subsetter (which would rewrite the shared font).
    """

    def __init__(
        self,
        writer: Any,
        font: StampFont,
        *,
        font_size: int,
        features: Any = None,
        ot_language_tag: str | None = None,
        ot_script_tag: str | None = None,
        writing_direction: str | None = None,
        bcp47_lang_code: str | None = None,
        obj_stream: Any = None,
    ) -> None:
        import uharfbuzz as hb
        from pyhanko.pdf_utils.font.api import FontEngine
        from pyhanko.pdf_utils.font.opentype import _check_ot_tag

        if writing_direction not in (None, "ltr", "rtl", "ttb", "btt"):
            raise ValueError("Writing direction must be one of 'ltr', 'rtl', 'ttb' or 'btt'.")
        FontEngine.__init__(
            self,
            writer,
            font.ps_name,
            embedded_subset=True,
            obj_stream=obj_stream,
            font_size=font_size,
        )
        self.font = font
        self.hb_font = hb.Font(font.shaping)
        self.tt = font.tt
        self._font_ref = writer.allocate_placeholder()
        self.cff_charset = None
        self.use_raw_gids = True  # TrueType outlines: CID = glyph id (CIDToGIDMap /Identity)
        self.cidfont_obj = _StampCIDFont(font, self.subset_prefix, self)
        self.features = features
        self.units_per_em = font.tt["head"].unitsPerEm
        self._glyphs: dict[int, tuple[int, int]] = {}
        self._glyph_set = None
        self._cid_to_unicode: dict[int, str] = {}
        self.ot_language_tag = _check_ot_tag(ot_language_tag)
        self.ot_script_tag = _check_ot_tag(ot_script_tag)
        self.writing_direction = writing_direction
        self.bcp47_lang_code = bcp47_lang_code
        self._subset_created = self._write_prepared = False

    @property
    def _reverse_cmap(self) -> dict[str, set[int]]:
        return self.font.reverse_cmap

    def _get_cid_and_width(self, glyph_id: int) -> tuple[int, int]:
        result = self._glyphs.get(glyph_id)
        if result is None:
            result = self._glyphs[glyph_id] = (glyph_id, self.font.advances[glyph_id])
        return result

    def used_glyphs(self) -> list[int]:
        return list(self._glyphs)

    def _extract_subset(self, options: Any = None) -> None:
        """Nothing to cut here: :meth:`_StampCIDFont.set_font_file` writes the subset."""


@dataclass(frozen=True)
class StampFontFactory(GlyphAccumulatorFactory):
    """pyHanko's factory over the cached :class:`StampFont` of ``font_file``.

    (The stock factory also opens the font file for every stamp and never
    closes it: a ResourceWarning per signature.)
    """

    def create_font_engine(self, writer: Any, obj_stream: Any = None) -> GlyphAccumulator:
        if obj_stream is None and writer.stream_xrefs and self.create_objstream_if_needed:
            obj_stream = writer.prepare_object_stream()
        return StampGlyphs(
            writer,
            stamp_font(self.font_file),
            font_size=self.font_size,
            ot_script_tag=self.ot_script_tag,
            ot_language_tag=self.ot_language_tag,
            writing_direction=self.writing_direction,
            bcp47_lang_code=self.bcp47_lang_code,
            obj_stream=obj_stream,
        )
