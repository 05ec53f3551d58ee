"""Hostile variants of a signed chain, made from its bytes (PDF Insecurity classes and more)."""

from __future__ import annotations

import io
import re
import zlib
from datetime import UTC, datetime, timedelta

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.generic import pdf_name, pdf_string
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers


def _writer(data: bytes) -> IncrementalPdfFileWriter:
    return IncrementalPdfFileWriter(io.BytesIO(data), strict=False)


def _out(w: IncrementalPdfFileWriter) -> bytes:
    buf = io.BytesIO()
    w.write(buf)
    return buf.getvalue()


def _page(w: IncrementalPdfFileWriter) -> tuple[generic.Reference, generic.DictionaryObject]:
    ref = w.root["/Pages"]["/Kids"].raw_get(0)
    return ref, ref.get_object()


def sig_holes(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of every /Contents hole, from the ByteRanges in the bytes."""
    out = []
    for m in re.finditer(rb"/ByteRange\s*\[\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*\]", data):
        a, b, c, _ = (int(x) for x in m.groups())
        out.append((a + b, c))
    return out


def appended_bytes(data: bytes) -> bytes:
    return data + b"\n% appended after the last revision\n1 0 obj (surprise) endobj\n"


def incremental_saving(data: bytes) -> bytes:
    """An unsigned update after signing that points the page at new content."""
    w = _writer(data)
    _, page = _page(w)
    new = w.add_object(
        generic.StreamObject(
            stream_data=b"BT /F1 14 Tf 72 760 Td (Kinh phi: 999.000.000 dong) Tj ET"
        )
    )
    page[pdf_name("/Contents")] = new
    w.update_container(page)
    return _out(w)


def shadow_replace(data: bytes) -> bytes:
    """Hide-and-replace: the signed content stream object itself is overridden in a later update."""
    w = _writer(data)
    _, page = _page(w)
    ref = page.raw_get("/Contents")
    w.mark_update(ref)
    # same object number, new bytes: the page dictionary itself is untouched
    w.objects[(ref.generation, ref.idnum)] = generic.StreamObject(
        stream_data=b"BT /F1 14 Tf 72 760 Td (Noi dung da bi thay) Tj ET"
    )
    return _out(w)


def set_field(data: bytes, name: str, value: str) -> bytes:
    """Change (or blank) a text field's value and appearance in an unsigned update."""
    w = _writer(data)
    for ref in w.root["/AcroForm"]["/Fields"]:
        obj = ref.get_object()
        if obj.get("/T") == name:
            obj[pdf_name("/V")] = pdf_string(value)
            ap = generic.StreamObject(
                {
                    pdf_name("/Type"): pdf_name("/XObject"),
                    pdf_name("/Subtype"): pdf_name("/Form"),
                    pdf_name("/BBox"): generic.ArrayObject(
                        [generic.NumberObject(x) for x in (0, 0, 128, 20)]
                    ),
                },
                stream_data=f"/Tx BMC BT /Helv 10 Tf 2 6 Td ({value}) Tj ET EMC".encode("latin-1"),
            )
            obj[pdf_name("/AP")] = generic.DictionaryObject({pdf_name("/N"): w.add_object(ap)})
            w.mark_update(ref)
            return _out(w)
    raise KeyError(name)


def add_annotation(data: bytes) -> bytes:
    """Evil annotation: a FreeText annotation over the page after signing."""
    w = _writer(data)
    _, page = _page(w)
    annot = w.add_object(
        generic.DictionaryObject(
            {
                pdf_name("/Type"): pdf_name("/Annot"),
                pdf_name("/Subtype"): pdf_name("/FreeText"),
                pdf_name("/Rect"): generic.ArrayObject(
                    [generic.NumberObject(x) for x in (72, 740, 400, 780)]
                ),
                pdf_name("/Contents"): pdf_string("Kinh phi: 999.000.000 dong"),
                pdf_name("/DA"): pdf_string("/Helv 14 Tf 0 g"),
            }
        )
    )
    annots = page["/Annots"]
    annots.append(annot)
    w.update_container(annots)
    return _out(w)


def strip_signature_field(data: bytes, name: str) -> bytes:
    """Remove a signed field from the form and the page (its signature dictionary stays in the bytes)."""
    w = _writer(data)
    form_fields = w.root["/AcroForm"]["/Fields"]
    keep = [r for r in form_fields if r.get_object().get("/T") != name]
    assert len(keep) == len(form_fields) - 1
    form_fields.clear()
    form_fields.extend(keep)
    w.update_container(form_fields)
    _, page = _page(w)
    annots = page["/Annots"]
    kept = [r for r in annots if r.get_object().get("/T") != name]
    annots.clear()
    annots.extend(kept)
    w.update_container(annots)
    return _out(w)


def unknown_subfilter(data: bytes) -> bytes:
    """The first signature's /SubFilter renamed to one no validator knows (same length)."""
    i = data.index(b"/ETSI.CAdES.detached")
    return data[:i] + b"/ETSI.CAdES.detacheX" + data[i + 20 :]


def wrapped_signature(data: bytes) -> bytes:
    """Signature wrapping: the /Contents hole shrunk, attacker data moved into it; ByteRange unchanged."""
    start, end = sig_holes(data)[0]
    hole = data[start:end]
    hexpart = hole[1:-1].rstrip(b"0")
    if len(hexpart) % 2:
        hexpart += b"0"
    injected = b"<" + hexpart + b"> /Wrapped ("
    filler = end - start - len(injected) - 1
    new_hole = injected + b"x" * filler + b")"
    assert len(new_hole) == end - start
    return data[:start] + new_hole + data[end:]


def zeroed_contents(data: bytes) -> bytes:
    """Universal signature forgery: /Contents all zeroes."""
    start, end = sig_holes(data)[0]
    return data[:start] + b"<" + b"0" * (end - start - 2) + b">" + data[end:]


def null_byte_range(data: bytes) -> bytes:
    """Universal signature forgery: /ByteRange replaced by null (same length)."""
    m = re.search(rb"/ByteRange\s*\[[^\]]*\]", data)
    assert m
    text = b"/ByteRange null"
    return data[: m.start()] + text + b" " * (m.end() - m.start() - len(text)) + data[m.end() :]


def tamper_signed_byte(data: bytes) -> bytes:
    """Change one letter of the page text, inside every signature's signed range."""
    i = data.index(b"(To trinh")
    return data[: i + 1] + b"X" + data[i + 2 :]


def self_made_signer(name: str = "Nguoi la") -> signers.SimpleSigner:
    """A signer with a self-signed certificate nobody configured as trusted."""
    from asn1crypto import keys as asn1_keys
    from asn1crypto import x509 as asn1_x509
    from cryptography import x509 as cx509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID
    from pyhanko.sign.general import load_cert_from_pemder  # noqa: F401 (import check only)
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = cx509.Name([cx509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        cx509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(cx509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(
            cx509.KeyUsage(True, True, False, False, False, False, False, False, False),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    asn1_cert = asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))
    asn1_key = asn1_keys.PrivateKeyInfo.load(
        key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return signers.SimpleSigner(
        signing_cert=asn1_cert,
        signing_key=asn1_key,
        cert_registry=SimpleCertificateStore.from_certs([asn1_cert]),
    )


def sneaky_signature(data: bytes) -> bytes:
    """A new signature field added after certification and signed with a self-made certificate."""
    w = _writer(data)
    meta = signers.PdfSignatureMetadata(
        field_name="sneaky", md_algorithm="sha256", subfilter=fields.SigSeedSubFilter.PADES
    )
    signer = signers.PdfSigner(
        meta,
        signer=self_made_signer(),
        new_field_spec=fields.SigFieldSpec("sneaky", box=(72, 72, 272, 112)),
    )
    return signer.sign_pdf(w).getvalue()


def self_made_root_pem(tmp_path) -> str:  # type: ignore[no-untyped-def]
    from asn1crypto import pem

    signer = self_made_signer("Some other root")
    path = tmp_path / "other-root.pem"
    path.write_bytes(pem.armor("CERTIFICATE", signer.signing_cert.dump()))
    return str(path)


# --- malformed inputs --------------------------------------------------------------------


def _pdf_with(objects: list[bytes], root: int = 1, xref_stream: bytes | None = None) -> bytes:
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for i, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root {root} 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def deep_nesting(depth: int = 10_000) -> bytes:
    deep = b"[" * depth + b"]" * depth
    return _pdf_with(
        [
            b"<< /Type /Catalog /Pages 2 0 R /Deep " + deep + b" >>",
            b"<< /Type /Pages /Kids [] /Count 0 >>",
        ]
    )


def deflate_bomb(mib: int = 400) -> bytes:
    """A catalog stored in an object stream that inflates to hundreds of MiB."""
    comp = zlib.compressobj(9)
    head = b"1 0 "
    body = b"<< /Type /Catalog /Pages 2 0 R >>"
    chunk = b"\x00" * (1 << 20)
    parts = [comp.compress(head + body + b" ")]
    for _ in range(mib):
        parts.append(comp.compress(chunk))
    parts.append(comp.flush())
    data = b"".join(parts)
    out = bytearray(b"%PDF-1.7\n")
    off_objstm = len(out)
    out += (
        f"3 0 obj\n<< /Type /ObjStm /N 1 /First {len(head)} /Filter /FlateDecode /Length {len(data)} >>\nstream\n".encode()
        + data
        + b"\nendstream\nendobj\n"
    )
    off_pages = len(out)
    out += b"2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\n"
    # a cross-reference stream: object 1 lives in object stream 3
    rows = [(0, 0, 255), (2, 3, 0), (1, off_pages, 0), (1, off_objstm, 0)]
    xref_data = b"".join(bytes([t]) + f.to_bytes(4, "big") + bytes([g & 0xFF]) for t, f, g in rows)
    off_xref = len(out)
    out += f"4 0 obj\n<< /Type /XRef /Size 5 /W [1 4 1] /Root 1 0 R /Length {len(xref_data) + 6} >>\nstream\n".encode()
    rows.append((1, off_xref, 0))
    xref_data = b"".join(bytes([t]) + f.to_bytes(4, "big") + bytes([g & 0xFF]) for t, f, g in rows)
    out += xref_data + b"\nendstream\nendobj\n"
    out += f"startxref\n{off_xref}\n%%EOF\n".encode()
    return bytes(out)


def first_signed(data: bytes) -> int:
    return PdfFileReader(io.BytesIO(data), strict=False).xrefs.total_revisions
