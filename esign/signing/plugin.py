"""Checking a PDF that a whole-document signing plugin signed (pure: pyHanko, no ORM).

Officials' vendor plugins download the PDF, sign it with the token and upload
the result. Such a file is accepted only if it is the current revision byte
for byte followed by exactly one incremental update holding exactly the
expected signature, and nothing else: pyHanko's difference analysis judges the
update, against the certification (DocMDP) and every earlier field lock.
Who signed is for the caller to judge (it knows the officer's certificates).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

from asn1crypto import x509
from pyhanko.pdf_utils import generic, misc
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.diff_analysis import (
    DEFAULT_DIFF_POLICY,
    CatalogModificationRule,
    DiffResult,
    FormUpdatingRule,
    ModificationLevel,
    StandardDiffPolicy,
)
from pyhanko.sign.diff_analysis.constants import (
    ACROFORM_EXEMPT_STRICT_COMPARISON,
    ROOT_EXEMPT_STRICT_COMPARISON,
)
from pyhanko.sign.diff_analysis.policy_api import SuspiciousModification
from pyhanko.sign.fields import FieldMDPSpec, MDPPerm, enumerate_sig_fields
from pyhanko.sign.validation.pdf_embedded import (
    EmbeddedPdfSignature,
    async_validate_pdf_signature,
    read_certification_data,
)
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext

from esign.errors import InvalidPdf, UploadRefused
from esign.signing.deferred import _run

WHITESPACE = b" \t\r\n\f\x00"
#: what one signature may do to a document: sign, fill forms (its own field's value and appearance)
ALLOWED_LEVEL = ModificationLevel.FORM_FILLING
#: The certifying revision is the document's first signature: it also adds the catalog's /Perms
#: and sets /SigFlags to "signatures exist, append only"; both are checked in _check_kind instead.
#: Every other rule is pyHanko's default.
CERTIFYING_POLICY = StandardDiffPolicy(
    global_rules=[
        CatalogModificationRule(ignored_keys=ROOT_EXEMPT_STRICT_COMPARISON | {"/Perms"}),
        *DEFAULT_DIFF_POLICY.global_rules[1:],
    ],
    form_rule=FormUpdatingRule(
        field_rules=DEFAULT_DIFF_POLICY.form_rule.field_rules,
        ignored_acroform_keys=ACROFORM_EXEMPT_STRICT_COMPARISON | {"/SigFlags"},
    ),
)
SIG_FLAGS = (1, 3)  # SignaturesExist, with AppendOnly


@dataclass(frozen=True)
class PluginSignature:
    """The one new signature of an accepted upload."""

    field: str
    signer: x509.Certificate
    #: sha256 of the signer certificate (DER), hex: how esign names a bound certificate
    fingerprint: str
    revision: int


def check_plugin_signature(
    head: bytes,
    data: bytes,
    *,
    field: str,
    certify: bool,
    validation_context: ValidationContext,
) -> PluginSignature:
    """Check that ``data`` is ``head`` plus exactly one new signature in ``field``; raise if not.

    ``certify``: the step's signature is the certification (DocMDP P=2).
    ``validation_context`` decides trust; it should not fetch (the upload is
    judged on what it carries and the configured roots).
    """
    if b"%PDF-" not in data[:1024]:
        raise InvalidPdf("This file is not a PDF; upload the PDF your signing plugin saved")
    if not data.startswith(head):
        raise UploadRefused(
            "The uploaded PDF is not the current revision of this document followed by a "
            "signature: its first %(size)s bytes differ. Download the current PDF again, sign "
            "it with the plugin and upload the result",
            size=len(head),
        )
    if len(data) == len(head):
        raise UploadRefused(
            "The uploaded PDF is the current revision unchanged: it carries no new signature"
        )
    reader = _read(data)
    before = _read(head)
    known = before.xrefs.total_revisions
    _check_end(data, len(head))

    try:
        everything = list(reader.embedded_signatures)
    except (misc.PdfError, ValueError, KeyError, TypeError) as e:
        raise UploadRefused(
            "A signature in the uploaded PDF cannot be read: %(reason)s", reason=_short(e)
        ) from e
    new = [s for s in everything if s.signed_revision >= known]
    if not new:
        raise UploadRefused("The uploaded PDF carries no new signature")
    if len(new) > 1:
        raise UploadRefused(
            "The uploaded PDF carries %(n)s new signatures (%(fields)s); this step adds one, in the "
            "field %(field)s",
            n=len(new),
            fields=", ".join(s.field_name for s in new),
            field=field,
        )
    added = reader.xrefs.total_revisions - known
    if added != 1:
        raise UploadRefused(
            "The uploaded PDF adds %(n)s revisions to the document; a signature adds exactly one",
            n=added,
        )
    signature = new[0]
    _check_field(before, reader, signature, field)
    _check_kind(before, reader, signature, certify)
    _check_update(before, reader, known, certify)
    _check_earlier(reader, [s for s in everything if s is not signature])
    _check_value(signature, validation_context)
    signer = signature.signer_cert
    return PluginSignature(
        field=field,
        signer=signer,
        fingerprint=hashlib.sha256(signer.dump()).hexdigest(),
        revision=signature.signed_revision,
    )


def _read(data: bytes) -> PdfFileReader:
    try:
        reader = PdfFileReader(io.BytesIO(data), strict=False)
        _ = reader.root["/Pages"]
    except (misc.PdfError, ValueError, KeyError, TypeError, IndexError) as e:
        raise InvalidPdf("This PDF is damaged or incomplete: %(reason)s", reason=_short(e)) from e
    if reader.encrypted:
        raise InvalidPdf("This PDF is encrypted; save it without a password and upload it again")
    return reader


def _short(e: BaseException) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0][:200]


def _check_end(data: bytes, head_size: int) -> None:
    """The update ends with its end-of-file marker: nothing hides after it."""
    eof = data.rfind(b"%%EOF")
    if eof < head_size or data[eof + 5 :].strip(WHITESPACE):
        raise UploadRefused(
            "The uploaded PDF has bytes after its last end-of-file marker; upload the file exactly "
            "as the plugin saved it"
        )


def _sig_fields(reader: PdfFileReader) -> dict[str, generic.PdfObject | None]:
    """Signature field name → its value reference (None: not signed)."""
    out: dict[str, generic.PdfObject | None] = {}
    for name, value, ref in enumerate_sig_fields(reader):
        out[name] = ref.get_object().raw_get("/V") if value is not None else None
    return out


def _check_field(
    before: PdfFileReader, after: PdfFileReader, signature: EmbeddedPdfSignature, field: str
) -> None:
    if signature.field_name != field:
        raise UploadRefused(
            "The new signature is in the field %(found)s; this step signs the field %(field)s",
            found=signature.field_name,
            field=field,
        )
    old, new = _sig_fields(before), _sig_fields(after)
    if field not in old:
        raise UploadRefused("The document has no signature field %(field)s to sign", field=field)
    if old[field] is not None:
        raise UploadRefused("The signature field %(field)s was already signed", field=field)
    if set(new) != set(old):
        raise UploadRefused(
            "The uploaded PDF adds or removes signature fields (%(fields)s); a signature only "
            "fills its own field",
            fields=", ".join(sorted(set(new) ^ set(old))),
        )
    changed = sorted(n for n, v in old.items() if v is not None and new[n] != v)
    if changed:
        raise UploadRefused(
            "The uploaded PDF replaces the earlier signature in %(fields)s",
            fields=", ".join(changed),
        )
    sig_type = signature.sig_object.get("/Type")
    if sig_type is not None and sig_type != "/Sig":
        raise UploadRefused(
            "The new signature is a document timestamp, not the officer's signature"
        )


def _check_kind(
    before: PdfFileReader, after: PdfFileReader, signature: EmbeddedPdfSignature, certify: bool
) -> None:
    """Certification (DocMDP P=2) exactly when the step certifies; the field's lock exactly."""
    certified_before = read_certification_data(before) is not None
    certification = read_certification_data(after)
    certifies = certification is not None and not certified_before
    if certify and not (certifies and certification.permission == MDPPerm.FILL_FORMS):
        raise UploadRefused(
            "This step is the certification signature allowing only form filling and signing "
            "afterwards (DocMDP P=2); the plugin did not make that kind of signature. Sign this "
            "step in esign"
        )
    if not certify and certifies:
        raise UploadRefused(
            "The new signature certifies the document; only the drafter's signature certifies it"
        )
    if certifies:
        perms = after.root["/Perms"]
        docmdp = perms.raw_get("/DocMDP")
        value = signature.sig_field.raw_get("/V")
        if set(perms.keys()) != {"/DocMDP"} or not (
            isinstance(docmdp, generic.IndirectObject)
            and isinstance(value, generic.IndirectObject)
            and docmdp.reference == value.reference
        ):
            raise UploadRefused(
                "The document permissions (/Perms) of the uploaded PDF are not the new certification alone"
            )
        old_flags = before.root["/AcroForm"].get("/SigFlags", 0)
        new_flags = after.root["/AcroForm"].get("/SigFlags", 0)
        if new_flags not in SIG_FLAGS or new_flags & old_flags != old_flags:
            raise UploadRefused(
                "The uploaded PDF sets unexpected signature flags (/SigFlags %(flags)s)",
                flags=new_flags,
            )
    raw = signature.sig_field.get("/Lock")
    wanted = FieldMDPSpec.from_pdf_object(raw.get_object()) if raw is not None else None
    made = signature.fieldmdp
    if _lock_key(made) != _lock_key(wanted):
        raise UploadRefused(
            "The new signature does not apply the lock its field %(field)s prescribes; use a "
            "plugin that honours field locks or sign this step in esign",
            field=signature.field_name,
        )


def _lock_key(spec: FieldMDPSpec | None) -> tuple[str, frozenset[str]] | None:
    if spec is None:
        return None
    return spec.action.value, frozenset(spec.fields or ())


def _check_update(before: PdfFileReader, after: PdfFileReader, known: int, certify: bool) -> None:
    """pyHanko's difference analysis of the new revision alone: signing and form filling only."""
    certification = read_certification_data(before)
    policy = CERTIFYING_POLICY if certify else DEFAULT_DIFF_POLICY
    try:
        result = policy.apply(
            old=after.get_historical_resolver(known - 1),
            new=after.get_historical_resolver(known),
            field_mdp_spec=None,
            doc_mdp=certification.permission if certification is not None else None,
        )
    except SuspiciousModification as e:
        raise UploadRefused(
            "The uploaded PDF changes the document beyond adding the signature: %(reason)s",
            reason=_short(e),
        ) from e
    assert isinstance(result, DiffResult)
    if result.modification_level > ALLOWED_LEVEL:
        raise UploadRefused(
            "The uploaded PDF changes the document beyond adding the signature (page content, "
            "annotations or other objects; pyHanko rates it %(level)s)",
            level=result.modification_level.name,
        )


def _check_earlier(reader: PdfFileReader, earlier: list[EmbeddedPdfSignature]) -> None:
    """Every earlier signature's own review (its DocMDP and field lock) still allows the file."""
    for signature in earlier:
        result = DEFAULT_DIFF_POLICY.review_file(
            reader,
            signature.signed_revision,
            field_mdp_spec=signature.fieldmdp,
            doc_mdp=signature.docmdp_level,
        )
        if isinstance(result, SuspiciousModification):
            raise UploadRefused(
                "The uploaded PDF makes a change the signature in %(field)s forbids: %(reason)s",
                field=signature.field_name,
                reason=_short(result),
            )
        level = result.modification_level
        allowed = signature.docmdp_level
        if level > ALLOWED_LEVEL or (allowed is not None and level.value > allowed.value):
            raise UploadRefused(
                "The uploaded PDF makes a change the signature in %(field)s forbids (%(level)s)",
                field=signature.field_name,
                level=level.name,
            )


def _check_value(signature: EmbeddedPdfSignature, validation_context: ValidationContext) -> None:
    try:
        # the caller's context does not fetch: trust is judged on the configured roots alone
        status = _run(async_validate_pdf_signature(signature, validation_context, skip_diff=True))
    except (misc.PdfError, ValueError, KeyError, TypeError) as e:
        raise UploadRefused(
            "The new signature cannot be checked: %(reason)s", reason=_short(e)
        ) from e
    if not status.intact or not status.valid:
        raise UploadRefused(
            "The new signature does not match the document: it is broken or was made over other bytes"
        )
    if status.coverage < SignatureCoverageLevel.ENTIRE_REVISION:
        raise UploadRefused("The new signature does not cover its whole revision")
    if not status.trusted:
        raise UploadRefused(
            "The certificate of the new signature (%(subject)s) was not issued by a certificate "
            "authority this server trusts",
            subject=signature.signer_cert.subject.human_friendly,
        )
