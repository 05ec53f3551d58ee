"""Build a real signed chain with raw pyHanko, and hostile variants of it from bytes.

The chain is the advisory-memo workflow of DESIGN.md section 3: every field
exists in revision 0; the drafter certifies (DocMDP P=2); two advisers approve;
the chair approves and locks every field except number and date; the clerk fills
number and date and applies the agency seal, locking every field; each
signature carries a timestamp and its validation data (B-LT), and a document
timestamp closes the chain (B-LTA).
"""

from __future__ import annotations

import io
import socket
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from asn1crypto import pem, x509
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.generic import pdf_name, pdf_string
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers, timestamps
from pyhanko.sign.fields import FieldMDPAction, FieldMDPSpec, MDPPerm, SigFieldSpec
from pyhanko_certvalidator import ValidationContext

PASSPHRASE = b"esign-dev"
VN = timezone(timedelta(hours=7))

#: (field, credential, role) in signing order
STEPS = (
    ("drafter", "nguyenvana-token", "drafter"),
    ("adviser_1", "tranthibinh-token", "adviser"),
    ("adviser_2", "lequangcuong-mobile", "adviser"),
    ("chair", "nguyenthiquynhtrieu-token", "chair"),
    ("seal", "agency-seal", "seal"),
)
TEXT_FIELDS = ("number", "date")
LOCKS = {
    "chair": FieldMDPSpec(FieldMDPAction.INCLUDE, fields=["drafter", "adviser_1", "adviser_2"]),
    "seal": FieldMDPSpec(FieldMDPAction.ALL),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def load_cert(path: Path) -> x509.Certificate:
    data = path.read_bytes()
    if pem.detect(data):
        data = pem.unarmor(data)[2]
    return x509.Certificate.load(data)


class PkiServices:
    """certomancer's OCSP, CRL and TSA services on 127.0.0.1, in a thread of this process."""

    def __init__(self, pki_dir: Path, port: int) -> None:
        from certomancer.integrations.animator import Animator, AnimatorArchStore
        from certomancer.registry import CertomancerConfig
        from werkzeug.serving import make_server

        arch = CertomancerConfig.from_file(str(pki_dir / "certomancer.yml")).get_pki_arch("esign")
        app = Animator(AnimatorArchStore({"esign": arch}), with_web_ui=False)
        self.server = make_server("127.0.0.1", port, app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.tsa_url = f"http://127.0.0.1:{port}/esign/tsa/tsa"

    def close(self) -> None:
        self.server.shutdown()


def base_pdf(text: str = "To trinh: sua chua nha van hoa khu pho 3") -> bytes:
    """A one-page PDF with an uncompressed content stream (so tests can find its text)."""
    from pyhanko.pdf_utils.writer import PdfFileWriter

    writer = PdfFileWriter()
    font = writer.add_object(
        generic.DictionaryObject(
            {
                pdf_name("/Type"): pdf_name("/Font"),
                pdf_name("/Subtype"): pdf_name("/Type1"),
                pdf_name("/BaseFont"): pdf_name("/Helvetica"),
            }
        )
    )
    content = generic.StreamObject(
        stream_data=f"BT /F1 14 Tf 72 760 Td ({text}) Tj ET".encode("ascii")
    )
    page = generic.DictionaryObject(
        {
            pdf_name("/Type"): pdf_name("/Page"),
            pdf_name("/MediaBox"): generic.ArrayObject(map(generic.NumberObject, (0, 0, 595, 842))),
            pdf_name("/Resources"): generic.DictionaryObject(
                {pdf_name("/Font"): generic.DictionaryObject({pdf_name("/F1"): font})}
            ),
            pdf_name("/Contents"): writer.add_object(content),
        }
    )
    writer.insert_page(page)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def add_text_field(writer: IncrementalPdfFileWriter, name: str, rect: tuple[int, ...]) -> None:
    page_ref = writer.root["/Pages"]["/Kids"][0]
    field = generic.DictionaryObject(
        {
            pdf_name("/FT"): pdf_name("/Tx"),
            pdf_name("/T"): pdf_string(name),
            pdf_name("/Type"): pdf_name("/Annot"),
            pdf_name("/Subtype"): pdf_name("/Widget"),
            pdf_name("/Rect"): generic.ArrayObject(map(generic.NumberObject, rect)),
            pdf_name("/F"): generic.NumberObject(4),
            pdf_name("/DA"): pdf_string("/Helv 10 Tf 0 g"),
        }
    )
    ref = writer.add_object(field)
    form = writer.root["/AcroForm"]
    form["/Fields"].append(ref)
    page = page_ref.get_object()
    page["/Annots"].append(ref)
    writer.update_container(form["/Fields"])
    writer.update_container(page["/Annots"])


def first_revision() -> bytes:
    """Revision 0: the memo with every workflow field already created."""
    writer = IncrementalPdfFileWriter(io.BytesIO(base_pdf()))
    y = 600
    for field, _cred, _role in STEPS:
        fields.append_signature_field(
            writer,
            SigFieldSpec(
                field,
                box=(300, y, 500, y + 40),
                field_mdp_spec=LOCKS.get(field),
                doc_mdp_update_value=MDPPerm.FILL_FORMS if field == "drafter" else None,
            ),
        )
        y -= 50
    add_text_field(writer, "number", (72, 700, 200, 720))
    add_text_field(writer, "date", (72, 670, 200, 690))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def fill_text(writer: IncrementalPdfFileWriter, name: str, value: str) -> None:
    for ref in writer.root["/AcroForm"]["/Fields"]:
        obj = ref.get_object()
        if obj.get("/T") == name:
            obj[pdf_name("/V")] = pdf_string(value)
            ap = generic.StreamObject(
                {
                    pdf_name("/Type"): pdf_name("/XObject"),
                    pdf_name("/Subtype"): pdf_name("/Form"),
                    pdf_name("/BBox"): generic.ArrayObject(
                        map(generic.NumberObject, (0, 0, 128, 20))
                    ),
                },
                stream_data=f"/Tx BMC BT /Helv 10 Tf 2 6 Td ({value}) Tj ET EMC".encode("latin-1"),
            )
            obj[pdf_name("/AP")] = generic.DictionaryObject({pdf_name("/N"): writer.add_object(ap)})
            writer.mark_update(ref)
            return
    raise KeyError(name)


@dataclass
class Chain:
    """The signed chain and what a test needs to check and attack it."""

    revisions: list[bytes]  # every stored revision, the last is the issued document
    fingerprints: dict[str, str]  # field -> signer certificate sha256 (hex)
    root: Path
    pki: Path

    @property
    def final(self) -> bytes:
        return self.revisions[-1]


def signer_for(pki: Path, credential: str) -> signers.SimpleSigner:
    signer = signers.SimpleSigner.load_pkcs12(str(pki / f"{credential}.p12"), passphrase=PASSPHRASE)
    assert signer is not None
    return signer


def sign_step(
    data: bytes,
    signer: signers.Signer,
    field: str,
    *,
    root: x509.Certificate,
    tsa_url: str | None,
    certify: bool = False,
    fill: dict[str, str] | None = None,
    lta: bool = False,
    revinfo: bool = True,
) -> bytes:
    writer = IncrementalPdfFileWriter(io.BytesIO(data))
    for name, value in (fill or {}).items():
        fill_text(writer, name, value)
    vc = ValidationContext(trust_roots=[root], allow_fetching=True) if revinfo else None
    meta = signers.PdfSignatureMetadata(
        field_name=field,
        certify=certify,
        docmdp_permissions=MDPPerm.FILL_FORMS,
        md_algorithm="sha256",
        subfilter=fields.SigSeedSubFilter.PADES,
        embed_validation_info=revinfo,
        validation_context=vc,
        use_pades_lta=lta,
    )
    timestamper = timestamps.HTTPTimeStamper(tsa_url) if tsa_url else None
    pdf_signer = signers.PdfSigner(meta, signer=signer, timestamper=timestamper)
    out = pdf_signer.sign_pdf(writer, existing_fields_only=True)
    return out.getvalue()


def build_chain(pki: Path, tsa_url: str | None, revinfo: bool = True) -> Chain:
    import hashlib

    root = load_cert(pki / "root.cert.pem")
    revisions = [first_revision()]
    prints: dict[str, str] = {}
    for i, (field, credential, _role) in enumerate(STEPS):
        signer = signer_for(pki, credential)
        prints[field] = hashlib.sha256(signer.signing_cert.dump()).hexdigest()
        last = i == len(STEPS) - 1
        revisions.append(
            sign_step(
                revisions[-1],
                signer,
                field,
                root=root,
                tsa_url=tsa_url,
                certify=(i == 0),
                fill={"number": "125/TTr-UBND", "date": "2026-11-28"} if last else None,
                lta=last and tsa_url is not None,
                revinfo=revinfo,
            )
        )
    return Chain(revisions=revisions, fingerprints=prints, root=pki / "root.cert.pem", pki=pki)


def revision_count(data: bytes) -> int:
    return PdfFileReader(io.BytesIO(data), strict=False).xrefs.total_revisions


def now() -> datetime:
    return datetime.now(tz=VN)
