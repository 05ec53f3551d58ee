"""Deferred signing: prepare a revision, let any device sign the tbs, finish it later.

:func:`prepare_signature` builds the new revision with a signature
placeholder (filling text fields and setting the field lock in the same
revision), computes the byte-range digest and the CMS signed attributes; their
DER is the **tbs** a device signs. :class:`Prepared` holds nothing but bytes,
numbers and strings, so it can be stored and finished by another process after
a restart. :func:`finish_signature` checks the value against the certificate
and the tbs, then embeds it: a wrong value is never embedded.

Only pyHanko's asynchronous API can stop half-way; the functions here are
synchronous wrappers that also work when called from inside an event loop.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import functools
import hashlib
import io
import json
import logging
from collections.abc import Coroutine, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import aiohttp
from asn1crypto import algos, cms, x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils import layout as pdf_layout
from pyhanko.pdf_utils.content import RawContent
from pyhanko.pdf_utils.generic import pdf_name, pdf_string
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.text import TextBoxStyle
from pyhanko.sign.fields import FieldMDPAction, FieldMDPSpec, MDPPerm, SigSeedSubFilter
from pyhanko.sign.general import SigningError as PyHankoSigningError
from pyhanko.sign.signers import PdfSignatureMetadata, PdfSigner
from pyhanko.sign.signers.pdf_byterange import PreparedByteRangeDigest
from pyhanko.sign.signers.pdf_cms import ExternalSigner, PdfCMSSignedAttributes
from pyhanko.sign.timestamps import HTTPTimeStamper, TimeStamper
from pyhanko.sign.timestamps.common_utils import TimestampRequestError
from pyhanko.stamp import TextStamp, TextStampStyle
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator import errors as cv_errors
from pyhanko_certvalidator.fetchers.api import OwnedFetcherBackend
from pyhanko_certvalidator.registry import SimpleCertificateStore, SimpleTrustManager

from esign.errors import CertificateRefused, InvalidPdf, SignatureValueInvalid, SigningError
from esign.signing.backend import CertificateBundle
from esign.signing.crls import KeepingFetcherBackend
from esign.signing.layout import font_file
from esign.signing.stampfont import StampFontFactory

log = logging.getLogger(__name__)

VN_TZ = timezone(timedelta(hours=7))
MD_ALGORITHM = "sha256"
STYLES = ("full", "initials", "seal")
LOCKS = (None, "all", "all_except")
#: headroom for a signature timestamp token (TSA certificate and chain included), in DER bytes
TIMESTAMP_HEADROOM = 12 * 1024
SEAL_RED = (0.78, 0.05, 0.05)
SIGN_BLUE = (0.05, 0.15, 0.55)

T = TypeVar("T")


@dataclass(frozen=True)
class StampText:
    """What the visible stamp says: authority lines (e.g. "KT. CHỦ TỊCH"), title, name, time."""

    authority: str
    title: str
    name: str
    #: an aware datetime; printed in ISO 8601 with +07:00
    signed_at: datetime


@dataclass(frozen=True)
class SignatureSpec:
    """One signing step: which field, what the stamp says, certification, lock and fill."""

    field: str
    stamp: StampText
    #: a certification signature (DocMDP P=2: form filling and signing stay allowed)
    certify: bool = False
    #: None, "all" (every field) or "all_except" (every field but ``lock_except``)
    lock: str | None = None
    lock_except: tuple[str, ...] = ()
    #: text fields filled in the same revision as the signature
    fill: Mapping[str, str] = field(default_factory=dict)
    #: "full", "initials" (small stamp for advisers) or "seal" (agency seal)
    style: str = "full"
    reason: str = ""
    location: str = ""


@dataclass(frozen=True)
class Prepared:
    """Everything between prepare and finish, as plain values (see :meth:`to_json`)."""

    #: the new revision with a zeroed placeholder; these bytes must not change before finish
    prepared_pdf: bytes
    document_digest: bytes
    reserved_start: int
    reserved_end: int
    #: DER of the CMS signed attributes: the bytes the device signs
    tbs: bytes
    md_algorithm: str
    #: "rsassa_pkcs1v15" or "ecdsa"
    mechanism: str
    #: ISO 8601, +07:00
    signing_time: str
    field: str = ""
    #: room was left for a signature timestamp
    timestamp: bool = False

    def to_json(self) -> str:
        data = asdict(self)
        for key in ("prepared_pdf", "document_digest", "tbs"):
            data[key] = base64.b64encode(data[key]).decode("ascii")
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Prepared:
        data = json.loads(text)
        for key in ("prepared_pdf", "document_digest", "tbs"):
            data[key] = base64.b64decode(data[key])
        return cls(**data)


# --- helpers -----------------------------------------------------------------------------------


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion in a worker thread's own event loop.

    Always in a worker: it works from code already inside an event loop, and on
    the main thread asyncio.run was measured (bench/signing.py) to spend about
    450 ms and 80 MiB more on a 10 MB document than in a worker thread.
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def iso_time(moment: datetime) -> str:
    """ISO 8601 in Vietnam's offset, to the second."""
    if moment.tzinfo is None:
        raise ValueError("signing times must be timezone-aware")
    return moment.astimezone(VN_TZ).isoformat(timespec="seconds")


def mechanism_of(cert: x509.Certificate) -> str:
    algo = cert.public_key.algorithm
    if algo == "rsa":
        return "rsassa_pkcs1v15"
    if algo == "ec":
        return "ecdsa"
    raise CertificateRefused(
        "Certificates with %(algo)s keys cannot sign here; use an RSA or ECDSA key", algo=algo
    )


def _signed_digest_algorithm(mechanism: str) -> algos.SignedDigestAlgorithm:
    name = {"rsassa_pkcs1v15": "sha256_rsa", "ecdsa": "sha256_ecdsa"}[mechanism]
    return algos.SignedDigestAlgorithm({"algorithm": name})


def _signature_size(cert: x509.Certificate) -> int:
    key = cert.public_key
    if key.algorithm == "rsa":
        return (key.bit_size + 7) // 8
    # DER ECDSA-Sig-Value: two integers of the curve size plus headers
    return 2 * ((key.bit_size + 7) // 8) + 9


def bytes_reserved(bundle: CertificateBundle, *, timestamp: bool = False) -> int:
    """Size of the /Contents placeholder (hex digits) for this certificate and chain.

    Computed from what the CMS will hold instead of pyHanko's dry run, which
    would sign twice: certificates, issuer name, signed attributes, signature
    value, structure; plus headroom for a timestamp token when asked.
    """
    certs = {c.dump() for c in (bundle.cert, *bundle.chain)}
    der = sum(len(c) for c in certs)
    der += 2 * len(bundle.cert.issuer.dump()) + _signature_size(bundle.cert)
    der += 2048  # signed attributes (content type, digest, signing certificate v2) and CMS framing
    der += (
        der // 10
    )  # margin: a wrong guess here costs a failed signature, a larger one costs nothing
    if timestamp:
        der += TIMESTAMP_HEADROOM
    hex_len = 2 * der
    return (hex_len + 1023) // 1024 * 1024


def check_certificate(
    bundle: CertificateBundle,
    at: datetime,
    *,
    validation_context: ValidationContext | None = None,
) -> None:
    """Refuse a certificate that is not valid at ``at`` or may not sign documents.

    With ``validation_context`` (trust roots, fetching allowed, see
    :func:`validation_context`), also build the path to a trusted root and ask
    the OCSP responders and CRLs named in the certificates: a revoked
    certificate is refused whatever the revocation mode; an unknown status
    (services unreachable) is refused in "hard-fail" mode and let through in
    "soft-fail" mode. The context is used up (its connections are closed).
    """
    cert = bundle.cert
    validity = cert["tbs_certificate"]["validity"]
    start, end = validity["not_before"].native, validity["not_after"].native
    subject = cert.subject.human_friendly
    if at.tzinfo is None:
        raise ValueError("check_certificate needs a timezone-aware time")
    if at < start:
        raise CertificateRefused(
            "The certificate of %(subject)s is not valid yet: it is valid from %(start)s",
            subject=subject,
            start=iso_time(start),
        )
    if at > end:
        raise CertificateRefused(
            "The certificate of %(subject)s expired on %(end)s; ask for a new certificate",
            subject=subject,
            end=iso_time(end),
        )
    usage = cert.key_usage_value
    if usage is not None and not ({"digital_signature", "non_repudiation"} & set(usage.native)):
        raise CertificateRefused(
            "The certificate of %(subject)s may not be used to sign documents", subject=subject
        )
    mechanism_of(cert)
    if validation_context is not None:
        _run(_released(_check_path(bundle, validation_context), validation_context))


async def _released(coro: Coroutine[Any, Any, T], *contexts: ValidationContext | None) -> T:
    """Await ``coro``, then close the HTTP sessions the contexts opened (in this event loop)."""
    try:
        return await coro
    finally:
        for vc in contexts:
            if vc is not None:
                await vc.aclose()


async def _check_path(bundle: CertificateBundle, vc: ValidationContext) -> None:
    cert = bundle.cert
    subject = cert.subject.human_friendly
    validator = CertificateValidator(
        cert, intermediate_certs=list(bundle.chain), validation_context=vc
    )
    try:
        await validator.async_validate_usage(key_usage=set())
    except cv_errors.RevokedError as e:
        raise CertificateRefused(
            "The certificate of %(subject)s was revoked on %(date)s; it cannot sign. "
            "Ask the certificate authority for a new certificate",
            subject=subject,
            date=iso_time(e.revocation_dt),
        ) from e
    except cv_errors.InsufficientRevinfoError as e:
        raise CertificateRefused(
            "The revocation status of the certificate of %(subject)s cannot be checked now "
            "(the certificate authority's OCSP or CRL service did not answer); try again later",
            subject=subject,
        ) from e
    except cv_errors.PathBuildingError as e:
        raise CertificateRefused(
            "The certificate of %(subject)s was not issued by a certificate authority this "
            "server trusts; it cannot sign",
            subject=subject,
        ) from e
    except (cv_errors.PathValidationError, cv_errors.InvalidCertificateError) as e:
        raise CertificateRefused(
            "The certificate of %(subject)s did not pass validation and cannot sign: %(reason)s",
            subject=subject,
            reason=str(e),
        ) from e


def _public_key(cert: x509.Certificate) -> Any:
    return serialization.load_der_public_key(cert.public_key.dump())


def verify_value(cert: x509.Certificate, tbs: bytes, value: bytes) -> bytes:
    """Check a signature value over ``tbs``; returns it in CMS form (DER for ECDSA).

    ECDSA devices (PKCS#11 CKM_ECDSA) often return r||s; that form is accepted
    and converted.
    """
    key = _public_key(cert)
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(value, tbs, padding.PKCS1v15(), hashes.SHA256())
            return value
        if isinstance(key, ec.EllipticCurvePublicKey):
            size = (key.curve.key_size + 7) // 8
            candidates = [value]
            if len(value) == 2 * size:
                r, s = int.from_bytes(value[:size], "big"), int.from_bytes(value[size:], "big")
                candidates.insert(0, encode_dss_signature(r, s))
            for candidate in candidates:
                try:
                    key.verify(candidate, tbs, ec.ECDSA(hashes.SHA256()))
                    return candidate
                except (InvalidSignature, ValueError):
                    continue
            raise InvalidSignature()
    except (InvalidSignature, ValueError) as e:
        raise SignatureValueInvalid(
            "The signature returned by the signing device does not match the certificate of "
            "%(subject)s; nothing was signed. Check that the device holds this certificate and sign again",
            subject=cert.subject.human_friendly,
        ) from e
    raise SignatureValueInvalid("This kind of key cannot be checked; nothing was signed")


# --- appearance --------------------------------------------------------------------------------


def preload() -> None:
    """Make now what the first signature of a process would: the stamp fonts.

    Cutting a font down for stamps is about a second of fontTools per face; a
    server process does it before it takes requests, not in a chair's first
    approval (several processes doing it at once held both cores for seconds).
    """
    from esign.signing.stampfont import stamp_font

    for face in ("Regular", "Bold"):
        stamp_font(str(font_file(face)))


@functools.lru_cache(maxsize=8)
def _font(face: str, size: int) -> StampFontFactory:
    # Noto Serif has unitsPerEm 1000, which pyHanko 0.38 assumes; other fonts need rescaling first
    return StampFontFactory(str(font_file(face)), font_size=size)


def _ellipse(w: float, h: float, inset: float) -> bytes:
    """Path of an ellipse inside a w×h box (four Bézier arcs)."""
    k = 0.5523
    rx, ry = w / 2 - inset, h / 2 - inset
    cx, cy = w / 2, h / 2
    return (
        b"%g %g m " % (cx + rx, cy)
        + b"%g %g %g %g %g %g c " % (cx + rx, cy + k * ry, cx + k * rx, cy + ry, cx, cy + ry)
        + b"%g %g %g %g %g %g c " % (cx - k * rx, cy + ry, cx - rx, cy + k * ry, cx - rx, cy)
        + b"%g %g %g %g %g %g c " % (cx - rx, cy - k * ry, cx - k * rx, cy - ry, cx, cy - ry)
        + b"%g %g %g %g %g %g c h S" % (cx + k * rx, cy - ry, cx + rx, cy - k * ry, cx + rx, cy)
    )


def _halves(text: str) -> list[str]:
    """Split a long name into two lines at the space nearest the middle (it must fit a circle)."""
    words = text.split()
    if len(text) <= 14 or len(words) < 2:
        return [text]
    best = min(range(1, len(words)), key=lambda i: abs(len(" ".join(words[:i])) - len(text) / 2))
    return [" ".join(words[:best]), " ".join(words[best:])]


def stamp_lines(stamp: StampText, style: str) -> str:
    """The stamp's text, in Vietnamese."""
    when = iso_time(stamp.signed_at)
    if style == "seal":
        return "\n".join([*_halves(stamp.name.upper()), "ĐÃ KÝ SỐ", when])
    lines = [ln.strip() for ln in stamp.authority.split("\n") if ln.strip()]
    if style == "initials":
        return "\n".join([f"Ký bởi: {stamp.name}", *([stamp.title] if stamp.title else []), when])
    if stamp.title:
        lines.append(stamp.title)
    lines += [f"Ký bởi: {stamp.name}", f"Thời gian ký: {when}"]
    return "\n".join(lines)


def _tight(vertical: float) -> pdf_layout.SimpleBoxLayoutRule:
    # pyHanko pads text boxes by 10 pt on every side by default, which shrinks
    # one-line field values to about 8 pt
    mid = pdf_layout.AxisAlignment.ALIGN_MID
    return pdf_layout.SimpleBoxLayoutRule(
        x_align=mid, y_align=mid, margins=pdf_layout.Margins(0, 0, vertical, vertical)
    )


def stamp_style(style: str, box: tuple[float, float]) -> TextStampStyle:
    """pyHanko stamp style for a field of ``box`` (width, height) points."""
    mid = pdf_layout.AxisAlignment.ALIGN_MID
    if style == "seal":
        w, h = box
        ring = RawContent(
            b"q %g %g %g RG 2 w %s 0.8 w %s Q" % (*SEAL_RED, _ellipse(w, h, 2), _ellipse(w, h, 6)),
            box=pdf_layout.BoxConstraints(width=w, height=h),
        )
        return TextStampStyle(
            stamp_text="%(stamp)s",
            text_box_style=TextBoxStyle(
                font=_font("Bold", 8),
                font_size=8,
                leading=10,
                text_color=SEAL_RED,
                box_layout_rule=_tight(1),
            ),
            border_width=0,
            background=ring,
            background_opacity=1.0,
            background_layout=pdf_layout.SimpleBoxLayoutRule(
                x_align=mid, y_align=mid, margins=pdf_layout.Margins()
            ),
            inner_content_layout=pdf_layout.SimpleBoxLayoutRule(
                x_align=mid,
                y_align=mid,
                margins=pdf_layout.Margins(w * 0.1, w * 0.1, h * 0.22, h * 0.22),
            ),
        )
    size = 8 if style == "initials" else 10
    return TextStampStyle(
        stamp_text="%(stamp)s",
        text_box_style=TextBoxStyle(
            font=_font("Regular", size),
            font_size=size,
            leading=size + 2,
            text_color=SIGN_BLUE,
            box_layout_rule=_tight(1),
        ),
        border_width=1,
        border_color=SIGN_BLUE,
        inner_content_layout=pdf_layout.SimpleBoxLayoutRule(
            x_align=mid, y_align=mid, margins=pdf_layout.Margins.uniform(3)
        ),
    )


QUADDING = {
    0: pdf_layout.AxisAlignment.ALIGN_MIN,
    1: pdf_layout.AxisAlignment.ALIGN_MID,
    2: pdf_layout.AxisAlignment.ALIGN_MAX,
}


def _text_field_appearance(
    writer: IncrementalPdfFileWriter, value: str, box: tuple[float, float], quadding: int = 1
) -> generic.IndirectObject:
    """An opaque appearance, so the printed placeholder under the field disappears."""
    w, h = box
    mid = pdf_layout.AxisAlignment.ALIGN_MID
    style = TextStampStyle(
        stamp_text="%(value)s",
        text_box_style=TextBoxStyle(
            font=_font("Regular", 12), font_size=12, leading=12, box_layout_rule=_tight(2)
        ),
        border_width=0,
        background=RawContent(
            b"1 g 0 0 %g %g re f" % (w, h), box=pdf_layout.BoxConstraints(width=w, height=h)
        ),
        background_opacity=1.0,
        background_layout=pdf_layout.SimpleBoxLayoutRule(
            x_align=mid, y_align=mid, margins=pdf_layout.Margins()
        ),
        inner_content_layout=pdf_layout.SimpleBoxLayoutRule(
            x_align=QUADDING.get(quadding, mid), y_align=mid, margins=pdf_layout.Margins(1, 1, 0, 0)
        ),
    )
    stamp = TextStamp(
        writer,
        style,
        text_params={"value": value},
        box=pdf_layout.BoxConstraints(width=w, height=h),
    )
    return stamp.register()


# --- fields --------------------------------------------------------------------------------------


def _fields(writer: IncrementalPdfFileWriter) -> dict[str, generic.IndirectObject]:
    """Terminal form fields by name (esign creates flat, top-level fields)."""
    try:
        form = writer.root["/AcroForm"]
        refs = form["/Fields"]
    except KeyError:
        return {}
    out = {}
    for ref in refs:
        obj = ref.get_object()
        if "/T" in obj:
            out[str(obj["/T"])] = ref
    return out


def _rect_size(obj: generic.DictionaryObject) -> tuple[float, float]:
    x1, y1, x2, y2 = (float(v) for v in obj["/Rect"])
    return abs(x2 - x1), abs(y2 - y1)


def _fill(
    writer: IncrementalPdfFileWriter,
    fields: dict[str, generic.IndirectObject],
    values: Mapping[str, str],
) -> None:
    for name, value in values.items():
        ref = fields.get(name)
        obj = ref.get_object() if ref is not None else None
        if obj is None or obj.get("/FT") != "/Tx":
            raise SigningError("The document has no text field %(name)s to fill", name=name)
        obj[pdf_name("/V")] = pdf_string(value)
        obj[pdf_name("/AP")] = generic.DictionaryObject(
            {
                pdf_name("/N"): _text_field_appearance(
                    writer, value, _rect_size(obj), int(obj.get("/Q", 1))
                )
            }
        )
        writer.mark_update(ref)


def _check_lock(fields: dict[str, generic.IndirectObject], spec: SignatureSpec) -> None:
    """The field's /Lock (written in revision 0) must agree with the step's lock.

    pyHanko applies the field's lock when it signs; a lock cannot be added now
    because validators treat a new /Lock after the certification as a violation.
    """
    obj = fields[spec.field].get_object()
    raw = obj.get("/Lock")
    if spec.lock is None:
        return
    if raw is None:
        raise SigningError(
            "The signature field %(field)s cannot lock the document: it was prepared "
            "without a lock. Start a new version of the document",
            field=spec.field,
        )
    lock = FieldMDPSpec.from_pdf_object(raw.get_object())
    if spec.lock == "all":
        agrees = lock.action == FieldMDPAction.ALL
    else:
        open_fields = set(spec.lock_except)
        agrees = (
            lock.action == FieldMDPAction.INCLUDE and not open_fields & set(lock.fields or ())
        ) or (lock.action == FieldMDPAction.EXCLUDE and open_fields <= set(lock.fields or ()))
    if not agrees:
        raise SigningError(
            "The lock of signature field %(field)s does not match this step; the document "
            "was prepared for another workflow",
            field=spec.field,
        )


def _validate_spec(spec: SignatureSpec) -> None:
    if spec.style not in STYLES:
        raise ValueError(f"stamp style {spec.style!r}: expected one of {STYLES}")
    if spec.lock not in LOCKS:
        raise ValueError(f"lock {spec.lock!r}: expected one of {LOCKS}")
    if spec.stamp.signed_at.tzinfo is None:
        raise ValueError("StampText.signed_at must be timezone-aware")


# --- prepare and finish --------------------------------------------------------------------------


def prepare_signature(
    pdf: bytes, spec: SignatureSpec, bundle: CertificateBundle, *, timestamp: bool = False
) -> Prepared:
    """Build the next revision with a placeholder for ``bundle``'s signature; returns its tbs."""
    return _run(_prepare(pdf, spec, bundle, timestamp))


async def _prepare(
    pdf: bytes, spec: SignatureSpec, bundle: CertificateBundle, timestamp: bool
) -> Prepared:
    _validate_spec(spec)
    mechanism = mechanism_of(bundle.cert)
    try:
        writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    except (PdfError, ValueError) as e:
        raise InvalidPdf("This PDF is damaged or incomplete and cannot be signed") from e
    fields = _fields(writer)
    target = fields.get(spec.field)
    if target is None or target.get_object().get("/FT") != "/Sig":
        raise SigningError(
            "The document has no signature field %(field)s; it was not prepared for this workflow",
            field=spec.field,
        )
    if "/V" in target.get_object():
        raise SigningError("The signature field %(field)s is already signed", field=spec.field)
    _fill(writer, fields, spec.fill)
    _check_lock(fields, spec)

    signer = ExternalSigner(
        signing_cert=bundle.cert,
        cert_registry=SimpleCertificateStore.from_certs([bundle.cert, *bundle.chain]),
        signature_value=_signature_size(bundle.cert),
        signature_mechanism=_signed_digest_algorithm(mechanism),
    )
    meta = PdfSignatureMetadata(
        field_name=spec.field,
        md_algorithm=MD_ALGORITHM,
        subfilter=SigSeedSubFilter.PADES,
        certify=spec.certify,
        docmdp_permissions=MDPPerm.FILL_FORMS,
        reason=spec.reason or None,
        location=spec.location or None,
        name=spec.stamp.name or None,
    )
    box = _rect_size(target.get_object())
    pdf_signer = PdfSigner(meta, signer, stamp_style=stamp_style(spec.style, box))
    signed_at = spec.stamp.signed_at.astimezone(VN_TZ)
    try:
        session = pdf_signer.init_signing_session(writer, existing_fields_only=True)
        # the stamp, /M and the signed attributes must all show the step's time
        session.system_time = signed_at
        validation_info = await session.perform_presign_validation(writer)
        tbs_document = session.prepare_tbs_document(
            validation_info=validation_info,
            bytes_reserved=bytes_reserved(bundle, timestamp=timestamp),
            appearance_text_params={"stamp": stamp_lines(spec.stamp, spec.style)},
        )
        digest, output = tbs_document.digest_tbs_document(output=io.BytesIO())
        tbs = await _signed_attributes(signer, bundle, mechanism, digest.document_digest, signed_at)
    except PyHankoSigningError as e:
        raise SigningError(
            "The document cannot take this signature: %(reason)s", reason=getattr(e, "msg", str(e))
        ) from e
    return Prepared(
        # getvalue hands over the buffer; read() would copy the whole document once more
        prepared_pdf=output.getvalue(),
        document_digest=digest.document_digest,
        reserved_start=digest.reserved_region_start,
        reserved_end=digest.reserved_region_end,
        tbs=tbs,
        md_algorithm=MD_ALGORITHM,
        mechanism=mechanism,
        signing_time=iso_time(signed_at),
        field=spec.field,
        timestamp=timestamp,
    )


#: a stand-in document digest, replaced in the cached DER of the signed attributes
_DIGEST_MARK = bytes(range(0xA0, 0xC0))
#: PAdES signed attributes that depend only on the certificate and algorithms, not on the time
_STABLE_ATTRIBUTES = {
    "content_type",
    "message_digest",
    "signing_certificate_v2",
    "cms_algorithm_protection",
}
_ATTRIBUTE_TEMPLATES: dict[tuple[bytes, str], bytes] = {}


async def _signed_attributes(
    signer: ExternalSigner,
    bundle: CertificateBundle,
    mechanism: str,
    document_digest: bytes,
    signed_at: datetime,
) -> bytes:
    """DER of the CMS signed attributes (the tbs) for ``document_digest``.

    For PAdES they are the content type, the message digest and the signer's
    certificate reference: pyHanko's output for one certificate differs only
    in the digest, and building it with asn1crypto took about a quarter of
    prepare. It is built once per certificate with a marker digest, which is
    then replaced; anything else in the attributes (a signing time) disables
    the shortcut.
    """
    key = (bundle.cert.sha256, mechanism)
    template = _ATTRIBUTE_TEMPLATES.get(key)
    if template is None:
        attrs = await signer.signed_attrs(
            _DIGEST_MARK,
            MD_ALGORITHM,
            attr_settings=PdfCMSSignedAttributes(signing_time=signed_at),
            use_pades=True,
        )
        template = attrs.dump()
        if {a["type"].native for a in attrs} - _STABLE_ATTRIBUTES or template.count(
            _DIGEST_MARK
        ) != 1:
            attrs = await signer.signed_attrs(
                document_digest,
                MD_ALGORITHM,
                attr_settings=PdfCMSSignedAttributes(signing_time=signed_at),
                use_pades=True,
            )
            return attrs.dump()
        if (
            len(_ATTRIBUTE_TEMPLATES) > 512
        ):  # a few dozen officers per ward: never reached in practice
            _ATTRIBUTE_TEMPLATES.clear()
        _ATTRIBUTE_TEMPLATES[key] = template
    return template.replace(_DIGEST_MARK, document_digest)


def _message_digest(signed_attrs: cms.CMSAttributes) -> bytes | None:
    for attr in signed_attrs:
        if attr["type"].native == "message_digest":
            return attr["values"][0].native
    return None


def finish_signature(
    prepared: Prepared,
    signature_value: bytes,
    bundle: CertificateBundle,
    *,
    timestamper: TimeStamper | None = None,
    validation_context: ValidationContext | None = None,
) -> bytes:
    """Check ``signature_value``, embed it and return the complete new revision.

    With ``timestamper`` the signature gets a signature timestamp (PAdES B-T);
    ``prepared`` must have been prepared with ``timestamp=True`` for the room.
    With ``validation_context`` (fetching allowed), the certificates, OCSP
    responses and CRLs of the signer and of the TSA are fetched and written to
    the document security store in an incremental update after the signature
    (PAdES B-LT); the bytes returned then hold both PDF revisions, so that one
    step stays one stored revision. The context is used up.
    """
    if timestamper is not None and not prepared.timestamp:
        raise SigningError(
            "This signature was prepared without room for a timestamp; start the signature again"
        )
    return _run(
        _released(
            _finish(prepared, signature_value, bundle, timestamper, validation_context),
            validation_context,
        )
    )


async def _finish(
    prepared: Prepared,
    value: bytes,
    bundle: CertificateBundle,
    timestamper: TimeStamper | None,
    vc: ValidationContext | None = None,
) -> bytes:
    data = prepared.prepared_pdf
    start, end = prepared.reserved_start, prepared.reserved_end
    if not data or not 0 < start < end <= len(data):
        raise SigningError("The prepared document is missing; start the signature again")
    # the device signed a digest of these bytes: any change means another document
    hasher = hashlib.sha256()
    hasher.update(memoryview(data)[:start])
    hasher.update(memoryview(data)[end:])
    if hasher.digest() != prepared.document_digest:
        raise SigningError(
            "The prepared document changed after it was prepared; start the signature again"
        )
    try:
        signed_attrs = cms.CMSAttributes.load(prepared.tbs)
        attrs_digest = _message_digest(signed_attrs)
    except ValueError as e:
        raise SigningError(
            "The prepared signature data is damaged; start the signature again"
        ) from e
    if attrs_digest != prepared.document_digest:
        raise SigningError(
            "The prepared signature data does not belong to this document; start again"
        )
    value = verify_value(bundle.cert, prepared.tbs, value)
    signer = ExternalSigner(
        signing_cert=bundle.cert,
        cert_registry=SimpleCertificateStore.from_certs([bundle.cert, *bundle.chain]),
        signature_value=value,
        signature_mechanism=_signed_digest_algorithm(prepared.mechanism),
    )
    try:
        signature_cms = await signer.async_sign_prescribed_attributes(
            prepared.md_algorithm, signed_attrs, timestamper=timestamper
        )
    except (TimeoutError, TimestampRequestError, aiohttp.ClientError) as e:
        raise SigningError(
            "The timestamp authority did not answer, so nothing was signed; try again in a moment"
        ) from e
    output = io.BytesIO(data)
    digest = PreparedByteRangeDigest(
        document_digest=prepared.document_digest,
        reserved_region_start=start,
        reserved_region_end=end,
    )
    try:
        digest.fill_with_cms(output, signature_cms)
    except PyHankoSigningError as e:
        raise SigningError(
            "The signature is larger than the room prepared for it; start the signature again"
        ) from e
    if vc is not None:
        await _add_validation_info(output, prepared.field, vc)
    return output.getvalue()


# --- long-term validation (PAdES B-LT, B-LTA) --------------------------------------------------------

#: room for a document timestamp token, in hex digits (twice the DER headroom)
DOCUMENT_TIMESTAMP_RESERVED = 2 * TIMESTAMP_HEADROOM
REVOCATION_MODES = ("hard-fail", "soft-fail")


def validation_context(
    trust_roots: list[x509.Certificate] | tuple[x509.Certificate, ...],
    *,
    revocation: str = "hard-fail",
    allow_fetching: bool = True,
) -> ValidationContext:
    """A fresh context trusting only ``trust_roots``, fetching OCSP/CRL from the certificates' URLs.

    "hard-fail": a certificate whose OCSP responder or CRL cannot be reached is
    not accepted; "soft-fail": it is (development only). Use each context for
    one operation: it keeps the revocation data it fetched (they go into the
    document) and its HTTP sessions belong to one event loop. OCSP is asked
    every time; CRLs come from :mod:`esign.signing.crls` while fresh.
    """
    if revocation not in REVOCATION_MODES:
        raise ValueError(f"revocation {revocation!r}: expected one of {REVOCATION_MODES}")
    return ValidationContext(
        trust_manager=SimpleTrustManager.build(trust_roots=list(trust_roots)),
        allow_fetching=allow_fetching,
        revocation_mode=revocation,
        # owned: closing the context closes its HTTP session; CRLs kept a few minutes (crls.py)
        fetcher_backend=OwnedFetcherBackend(KeepingFetcherBackend()) if allow_fetching else None,
    )


def timestamper(url: str, timeout: int = 10) -> TimeStamper:
    """An RFC 3161 client for the TSA at ``url`` (a new HTTP session per request)."""
    return HTTPTimeStamper(url, timeout=timeout)


def _refuse_unreachable(what: str, e: BaseException) -> SigningError:
    return SigningError(
        "The %(what)s could not be completed: a certificate authority service (TSA, OCSP or "
        "CRL) did not answer or refused the certificate (%(reason)s); try again in a moment",
        what=what,
        reason=str(e) or type(e).__name__,
    )


async def _add_validation_info(output: io.BytesIO, field_name: str, vc: ValidationContext) -> None:
    """Append a DSS revision with everything needed to validate the signature in ``field_name``."""
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation.dss import async_add_validation_info

    reader = PdfFileReader(output, strict=False)
    embedded = next(
        (e for e in reader.embedded_regular_signatures if e.field_name == field_name), None
    )
    if embedded is None:  # pragma: no cover - the field was just signed
        raise SigningError("The new signature %(field)s cannot be found", field=field_name)
    try:
        # the VRI entry is left out: PAdES does not need it and it only grows the file
        await async_add_validation_info(
            embedded, vc, add_vri_entry=False, in_place=True, force_write=True
        )
    except (cv_errors.ValidationError, cv_errors.PathError) as e:
        raise _refuse_unreachable("signature", e) from e


def add_document_timestamp(
    pdf: bytes, timestamper: TimeStamper, validation_context: ValidationContext
) -> bytes:
    """Append a document timestamp (PAdES B-LTA); returns the whole file.

    The TSA's certificates and revocation data go into the DSS in the same
    revision, before the timestamp, so the timestamp stays the last revision
    and covers the whole file. The context is used up.
    """
    return _run(
        _released(_document_timestamp(pdf, timestamper, validation_context, ()), validation_context)
    )


async def _document_timestamp(
    pdf: bytes, timestamper: TimeStamper, vc: ValidationContext, paths: Any
) -> bytes:
    from pyhanko.sign.signers.pdf_signer import PdfTimeStamper, TimestampDSSContentSettings
    from pyhanko.sign.validation.dss import DocumentSecurityStore

    try:
        writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    except (PdfError, ValueError) as e:
        raise InvalidPdf("This PDF is damaged or incomplete and cannot be timestamped") from e
    count = len(writer.prev.embedded_timestamp_signatures)
    if paths:
        DocumentSecurityStore.supply_dss_in_writer(writer, None, paths=paths, validation_context=vc)
    output = io.BytesIO()
    try:
        await PdfTimeStamper(
            timestamper, field_name=f"DocTimeStamp{count + 1}"
        ).async_timestamp_pdf(
            writer,
            MD_ALGORITHM,
            validation_context=vc,
            bytes_reserved=DOCUMENT_TIMESTAMP_RESERVED,
            output=output,
            dss_settings=TimestampDSSContentSettings(update_before_ts=True, include_vri=False),
        )
    except (TimeoutError, TimestampRequestError, aiohttp.ClientError) as e:
        raise SigningError(
            "The timestamp authority did not answer; the document timestamp was not added"
        ) from e
    except (cv_errors.ValidationError, cv_errors.PathError) as e:
        raise _refuse_unreachable("document timestamp", e) from e
    return output.getvalue()


def last_timestamp_expiry(pdf: bytes) -> datetime | None:
    """When the certificate of the last document timestamp expires; None without one."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    reader = PdfFileReader(io.BytesIO(pdf), strict=False)
    stamps = reader.embedded_timestamp_signatures
    if not stamps:
        return None
    cert = stamps[-1].signer_cert
    return cert["tbs_certificate"]["validity"]["not_after"].native


def refresh_archival_timestamp(
    pdf: bytes, timestamper: TimeStamper, validation_context: ValidationContext
) -> bytes:
    """Add a new document timestamp over an archived file (before the last one's certificate expires).

    The last document timestamp is validated first, with fresh revocation data
    that goes into the DSS together with the new timestamp's; an archive whose
    last timestamp no longer validates is refused rather than stamped over.
    The context is used up.
    """
    return _run(_released(_refresh(pdf, timestamper, validation_context), validation_context))


async def _refresh(pdf: bytes, timestamper: TimeStamper, vc: ValidationContext) -> bytes:
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation.pdf_embedded import async_validate_pdf_timestamp

    reader = PdfFileReader(io.BytesIO(pdf), strict=False)
    stamps = reader.embedded_timestamp_signatures
    if not stamps:
        raise SigningError("This document has no document timestamp to renew")
    status = await async_validate_pdf_timestamp(stamps[-1], validation_context=vc, skip_diff=True)
    if not (status.intact and status.valid and status.trusted):
        raise SigningError(
            "The last document timestamp no longer validates (%(summary)s); it was not renewed",
            summary=status.summary(),
        )
    return await _document_timestamp(pdf, timestamper, vc, (status.validation_path,))
