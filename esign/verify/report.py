"""The verification report: a frozen value, the same for CLI, web, API and bulk audit.

Every rule has a stable code (``RULES``) with a sentence in English and in
Vietnamese that a citizen or an auditor can read. A finding names its rule, the
verdict it implies, the signature field it is about (or None for the document)
and a detail that says what exactly was seen.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class Verdict(enum.IntEnum):
    """Document verdicts ordered by severity; the worst one wins.

    UNSIGNED is not a severity: it is the verdict of a readable PDF without any
    signature, and any finding worse than VALID overrides it.
    """

    VALID = 0
    UNSIGNED = 1
    UNTRUSTED = 2
    MODIFIED = 3
    INVALID = 4
    MALFORMED = 5

    @classmethod
    def worst(cls, verdicts: Any) -> Verdict:
        return max(verdicts, default=cls.VALID)


@dataclass(frozen=True)
class Rule:
    code: str
    verdict: Verdict
    en: str
    vi: str


def _rules(*rules: Rule) -> dict[str, Rule]:
    return {r.code: r for r in rules}


V = Verdict
#: every rule the verifier applies, by stable code
RULES: dict[str, Rule] = _rules(
    # --- the file itself -------------------------------------------------------
    Rule(
        "pdf.not_pdf",
        V.MALFORMED,
        "The file is not a PDF document.",
        "Tệp không phải là tài liệu PDF.",
    ),
    Rule(
        "pdf.too_large",
        V.MALFORMED,
        "The file is larger than the verifier accepts.",
        "Tệp lớn hơn mức tối đa mà hệ thống kiểm tra chấp nhận.",
    ),
    Rule(
        "pdf.unreadable",
        V.MALFORMED,
        "The PDF structure is damaged and cannot be read reliably.",
        "Cấu trúc PDF bị hỏng, không thể đọc một cách tin cậy.",
    ),
    Rule(
        "pdf.too_deep",
        V.MALFORMED,
        "The PDF contains objects nested too deeply to be read safely.",
        "Tệp PDF chứa các đối tượng lồng nhau quá sâu, không thể đọc an toàn.",
    ),
    Rule(
        "pdf.decode_limit",
        V.MALFORMED,
        "A compressed part of the PDF expands beyond safe limits (a possible decompression bomb).",
        "Một phần nén trong PDF giải nén vượt quá giới hạn an toàn (có thể là 'bom giải nén').",
    ),
    Rule(
        "pdf.encrypted",
        V.MALFORMED,
        "The PDF is encrypted; its signatures cannot be checked.",
        "Tệp PDF đã bị mã hóa; không thể kiểm tra chữ ký.",
    ),
    Rule(
        "pdf.too_many_revisions",
        V.MALFORMED,
        "The PDF has more revisions than the verifier accepts.",
        "Tệp PDF có nhiều phiên bản hơn mức hệ thống kiểm tra chấp nhận.",
    ),
    Rule(
        "verify.timeout",
        V.MALFORMED,
        "Verification took too long and was stopped.",
        "Việc kiểm tra mất quá nhiều thời gian và đã bị dừng.",
    ),
    Rule(
        "verify.memory",
        V.MALFORMED,
        "Verification needed more memory than allowed and was stopped.",
        "Việc kiểm tra cần nhiều bộ nhớ hơn mức cho phép và đã bị dừng.",
    ),
    Rule(
        "verify.crashed",
        V.MALFORMED,
        "The verifier failed on this file; it cannot be trusted as valid.",
        "Trình kiểm tra gặp lỗi với tệp này; không thể coi tệp là hợp lệ.",
    ),
    Rule(
        "verify.internal_error",
        V.MALFORMED,
        "An internal error stopped the check; the document cannot be confirmed as valid.",
        "Lỗi nội bộ đã dừng việc kiểm tra; không thể xác nhận tài liệu hợp lệ.",
    ),
    # --- file structure and revisions -----------------------------------------
    Rule(
        "file.trailing_bytes",
        V.MODIFIED,
        "Data was appended after the last revision of the document.",
        "Có dữ liệu được nối thêm sau phiên bản cuối cùng của tài liệu.",
    ),
    Rule(
        "revision.unsigned",
        V.MODIFIED,
        "The document was changed after it was signed, and nobody signed the change.",
        "Tài liệu đã bị thay đổi sau khi ký và thay đổi đó không được ai ký xác nhận.",
    ),
    Rule(
        "revision.not_covered",
        V.MODIFIED,
        "The last signature does not cover the whole file.",
        "Chữ ký cuối cùng không bao trùm toàn bộ tệp.",
    ),
    Rule(
        "revision.forbidden_change",
        V.INVALID,
        "A change after signing is not allowed by the signatures' modification rules.",
        "Một thay đổi sau khi ký không được phép theo quy tắc sửa đổi của các chữ ký.",
    ),
    Rule(
        "revision.mismatch",
        V.MODIFIED,
        "A revision of this file differs from the one stored in the system.",
        "Một phiên bản của tệp khác với phiên bản được lưu trong hệ thống.",
    ),
    Rule(
        "revision.count_mismatch",
        V.MODIFIED,
        "The file does not have the revisions recorded in the system.",
        "Tệp không có đúng các phiên bản đã ghi nhận trong hệ thống.",
    ),
    Rule(
        "docmdp.violation",
        V.INVALID,
        "A change made after certification is not permitted by the certifying signature.",
        "Một thay đổi sau khi chứng thực không được chữ ký chứng thực cho phép.",
    ),
    Rule(
        "fieldmdp.violation",
        V.INVALID,
        "A form field locked by a signature was changed afterwards.",
        "Một trường biểu mẫu đã bị khóa bởi chữ ký nhưng sau đó lại bị thay đổi.",
    ),
    Rule(
        "field.changed_after_signing",
        V.MODIFIED,
        "A form field value that was already signed was changed or erased later.",
        "Giá trị của một trường biểu mẫu đã được ký sau đó bị thay đổi hoặc xóa.",
    ),
    Rule(
        "field.added_after_signing",
        V.MODIFIED,
        "A new form field was added after the document was signed.",
        "Một trường biểu mẫu mới đã được thêm vào sau khi tài liệu được ký.",
    ),
    Rule(
        "annotation.added",
        V.MODIFIED,
        "An annotation (comment, stamp, link or drawing) was added after signing.",
        "Một chú thích (ghi chú, con dấu, liên kết hoặc hình vẽ) đã được thêm vào sau khi ký.",
    ),
    Rule(
        "certification.not_first",
        V.INVALID,
        "A certifying signature is not the first signature of the document.",
        "Chữ ký chứng thực không phải là chữ ký đầu tiên của tài liệu.",
    ),
    # --- each signature -------------------------------------------------------
    Rule(
        "signature.stripped",
        V.INVALID,
        "The file contains a signature that has been removed from the document's form.",
        "Tệp chứa một chữ ký đã bị gỡ khỏi biểu mẫu của tài liệu.",
    ),
    Rule(
        "signature.unreadable",
        V.INVALID,
        "A signature field contains a signature that cannot be read.",
        "Một trường chữ ký chứa chữ ký không đọc được.",
    ),
    Rule(
        "signature.unknown_subfilter",
        V.INVALID,
        "A signature uses a format (SubFilter) that the verifier does not accept.",
        "Một chữ ký dùng định dạng (SubFilter) mà hệ thống kiểm tra không chấp nhận.",
    ),
    Rule(
        "signature.byte_range",
        V.INVALID,
        "A signature's byte range is not well-formed.",
        "Vùng dữ liệu được ký (ByteRange) của chữ ký không hợp lệ.",
    ),
    Rule(
        "signature.coverage",
        V.INVALID,
        "A signature does not cover its whole revision of the document.",
        "Chữ ký không bao trùm toàn bộ phiên bản tài liệu mà nó ký.",
    ),
    Rule(
        "signature.digest_mismatch",
        V.INVALID,
        "The signed content was altered: its fingerprint no longer matches the signature.",
        "Nội dung đã ký bị thay đổi: dấu vân tay không còn khớp với chữ ký.",
    ),
    Rule(
        "signature.bad_value",
        V.INVALID,
        "The signature value is not valid for the signer's certificate.",
        "Giá trị chữ ký không hợp lệ với chứng thư số của người ký.",
    ),
    Rule(
        "signature.weak_algorithm",
        V.INVALID,
        "A signature uses an algorithm that is no longer accepted.",
        "Chữ ký dùng thuật toán không còn được chấp nhận.",
    ),
    Rule(
        "signature.untrusted",
        V.UNTRUSTED,
        "The signer's certificate does not lead to a trusted root certificate.",
        "Chứng thư số của người ký không dẫn đến chứng thư gốc tin cậy.",
    ),
    Rule(
        "signature.cert_expired",
        V.UNTRUSTED,
        "The signer's certificate was not valid at the time of signing.",
        "Chứng thư số của người ký không còn hiệu lực tại thời điểm ký.",
    ),
    Rule(
        "signature.key_usage",
        V.UNTRUSTED,
        "The signer's certificate is not meant for signing documents.",
        "Chứng thư số của người ký không dùng cho mục đích ký tài liệu.",
    ),
    Rule(
        "signature.revoked",
        V.INVALID,
        "The signer's certificate was revoked before the proven signing time.",
        "Chứng thư số của người ký đã bị thu hồi trước thời điểm ký được chứng minh.",
    ),
    Rule(
        "signature.revoked_later",
        V.VALID,
        "The signer's certificate was revoked after the proven signing time.",
        "Chứng thư số của người ký bị thu hồi sau thời điểm ký được chứng minh.",
    ),
    Rule(
        "signature.revocation_unknown",
        V.VALID,
        "The revocation status of the signer's certificate could not be established.",
        "Không xác định được tình trạng thu hồi của chứng thư số người ký.",
    ),
    Rule(
        "signature.revocation_required",
        V.UNTRUSTED,
        "Revocation status is required by policy but could not be established.",
        "Chính sách yêu cầu tình trạng thu hồi nhưng không xác định được.",
    ),
    Rule(
        "signature.timestamp_invalid",
        V.INVALID,
        "A timestamp attached to a signature is not valid.",
        "Dấu thời gian gắn với chữ ký không hợp lệ.",
    ),
    Rule(
        "signature.timestamp_untrusted",
        V.UNTRUSTED,
        "A timestamp attached to a signature comes from an untrusted authority.",
        "Dấu thời gian gắn với chữ ký đến từ đơn vị không được tin cậy.",
    ),
    Rule(
        "signature.not_checked",
        V.INVALID,
        "A signature could not be checked.",
        "Không thể kiểm tra một chữ ký.",
    ),
    # --- the workflow (documents issued by esign) --------------------------------
    Rule(
        "workflow.missing_signature",
        V.INVALID,
        "A signature required by the workflow is missing.",
        "Thiếu một chữ ký mà quy trình yêu cầu.",
    ),
    Rule(
        "workflow.unexpected_signature",
        V.INVALID,
        "The document carries a signature that the workflow did not record.",
        "Tài liệu có một chữ ký không được ghi nhận trong quy trình.",
    ),
    Rule(
        "workflow.signer_mismatch",
        V.INVALID,
        "A signature was made by someone other than the officer recorded for that step.",
        "Một chữ ký do người khác với cán bộ được ghi nhận cho bước đó thực hiện.",
    ),
    Rule(
        "workflow.order_mismatch",
        V.INVALID,
        "The signatures are not in the order of the workflow.",
        "Các chữ ký không theo đúng thứ tự của quy trình.",
    ),
    Rule(
        "document.unsigned",
        V.UNSIGNED,
        "The document carries no signature.",
        "Tài liệu không có chữ ký nào.",
    ),
)


@dataclass(frozen=True)
class Finding:
    """One rule that fired, with what exactly was seen."""

    code: str
    severity: Verdict
    message_en: str
    message_vi: str
    field: str | None = None
    detail: str = ""

    @classmethod
    def of(cls, code: str, field: str | None = None, detail: str = "") -> Finding:
        rule = RULES[code]
        return cls(code, rule.verdict, rule.en, rule.vi, field, detail)

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity.name,
            "message_en": self.message_en,
            "message_vi": self.message_vi,
            "field": self.field,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Change:
    """What one revision after a signature changed."""

    revision: int
    level: str  # pyHanko's modification level name, or "FORBIDDEN"
    signed_by: str | None  # the field whose signature the revision introduces, if any
    changed_fields: tuple[str, ...] = ()
    added_annotations: tuple[str, ...] = ()
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "level": self.level,
            "signed_by": self.signed_by,
            "changed_fields": list(self.changed_fields),
            "added_annotations": list(self.added_annotations),
            "note": self.note,
        }


@dataclass(frozen=True)
class SignatureReport:
    """Everything about one filled signature field."""

    field: str
    kind: str  # "certification", "approval", "timestamp", "unknown"
    verdict: Verdict
    signer: str | None = None
    issuer: str | None = None
    serial: str | None = None
    fingerprint: str | None = None  # sha256 of the signer certificate, hex
    trust_path: tuple[str, ...] = ()  # subjects, root first
    signing_time: str | None = None  # claimed by the signer (ISO 8601)
    timestamp_time: str | None = None  # proven by a trusted timestamp (ISO 8601)
    digest_algorithm: str | None = None
    signature_algorithm: str | None = None
    subfilter: str | None = None
    byte_range: tuple[int, ...] = ()
    coverage: str | None = None
    revision: int | None = None
    docmdp: str | None = None
    fieldmdp: str | None = None
    intact: bool | None = None
    valid: bool | None = None
    trusted: bool | None = None
    revocation: str = "unknown"  # good / revoked / unknown
    modification_level: str | None = None
    changes_after: tuple[Change, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, Verdict):
                value = value.name
            elif name == "changes_after":
                value = [c.to_dict() for c in value]
            elif isinstance(value, tuple):
                value = list(value)
            out[name] = value
        return out


@dataclass(frozen=True)
class Report:
    """The verdict on one file, the reasons for it and every signature."""

    verdict: Verdict
    reasons: tuple[Finding, ...] = ()
    signatures: tuple[SignatureReport, ...] = ()
    revisions: int = 0
    file_sha256: str = ""
    size: int = 0
    duration_ms: float = 0.0
    validation_time: str | None = None
    info: tuple[Finding, ...] = field(default=())

    @property
    def codes(self) -> set[str]:
        return {f.code for f in self.reasons} | {f.code for f in self.info}

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict.name,
            "reasons": [f.to_dict() for f in self.reasons],
            "info": [f.to_dict() for f in self.info],
            "signatures": [s.to_dict() for s in self.signatures],
            "revisions": self.revisions,
            "file_sha256": self.file_sha256,
            "size": self.size,
            "duration_ms": round(self.duration_ms, 1),
            "validation_time": self.validation_time,
        }


def decide(findings: Any, signed: bool) -> Verdict:
    """Worst finding wins; a readable document without signatures is UNSIGNED."""
    worst = Verdict.worst(f.severity for f in findings)
    if worst > Verdict.UNSIGNED:
        return worst
    return Verdict.VALID if signed else Verdict.UNSIGNED


def split_findings(findings: Any) -> tuple[tuple[Finding, ...], tuple[Finding, ...]]:
    """Reasons (they lower the verdict) and informational findings (they do not)."""
    found = tuple(findings)
    return (
        tuple(f for f in found if f.severity > Verdict.VALID),
        tuple(f for f in found if f.severity == Verdict.VALID),
    )
