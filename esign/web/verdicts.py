"""How a verification report reads on a page and in the PDF report: names, colours, times.

One vocabulary for the upload page, the QR page, the API's HTML twin and the
PDF report, in the user's language (the reasons come with both languages from
:mod:`esign.verify.report`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask_babel import lazy_gettext as _l

from esign.verify import Finding, Report, Verdict

VERDICT_NAMES = {
    Verdict.VALID: _l("VALID"),
    Verdict.UNSIGNED: _l("UNSIGNED"),
    Verdict.UNTRUSTED: _l("SIGNER NOT VERIFIED"),
    Verdict.MODIFIED: _l("MODIFIED AFTER SIGNING"),
    Verdict.INVALID: _l("INVALID"),
    Verdict.MALFORMED: _l("DAMAGED FILE"),
}

VERDICT_SUMMARIES = {
    Verdict.VALID: _l("Every signature is intact, made with a certificate from a trusted authority, "
                      "and nothing was changed after the last signature."),
    Verdict.UNSIGNED: _l("The file carries no digital signature."),
    Verdict.UNTRUSTED: _l("The signatures are intact, but a signer's certificate could not be traced "
                          "to a trusted certification authority."),
    Verdict.MODIFIED: _l("The file was changed after it was signed. Do not rely on it without checking "
                         "the original."),
    Verdict.INVALID: _l("At least one signature is broken or not permitted. Do not rely on this file."),
    Verdict.MALFORMED: _l("The file could not be read or checked completely. It cannot be confirmed as valid."),
}

#: green, amber, red: the banner's class and the PDF report's colour
TONES = {
    Verdict.VALID: "ok",
    Verdict.UNSIGNED: "warn",
    Verdict.UNTRUSTED: "warn",
    Verdict.MODIFIED: "bad",
    Verdict.INVALID: "bad",
    Verdict.MALFORMED: "bad",
}
TONE_RGB = {"ok": (22, 110, 52), "warn": (156, 92, 0), "bad": (176, 32, 32)}

KIND_NAMES = {
    "certification": _l("Certification (author)"),
    "approval": _l("Approval"),
    "timestamp": _l("Document timestamp"),
    "unknown": _l("Unknown"),
}

REVOCATION_NAMES = {
    "good": _l("Not revoked"),
    "revoked": _l("Revoked"),
    "unknown": _l("Not established"),
}

MODIFICATION_NAMES = {
    "NONE": _l("None"),
    "LTA_UPDATES": _l("Validation data only"),
    "FORM_FILLING": _l("Form filling and later signatures"),
    "ANNOTATIONS": _l("Annotations added"),
    "OTHER": _l("Other changes"),
    "FORBIDDEN": _l("Forbidden changes"),
}

FIELD_NAMES = {
    "drafter": _l("Drafter"),
    "adviser_1": _l("Adviser 1"),
    "adviser_2": _l("Adviser 2"),
    "adviser_3": _l("Adviser 3"),
    "chair": _l("Approval"),
    "seal": _l("Agency seal"),
}


def verdict_name(verdict: Verdict) -> str:
    return str(VERDICT_NAMES[verdict])


def verdict_summary(verdict: Verdict) -> str:
    return str(VERDICT_SUMMARIES[verdict])


def tone(verdict: Verdict) -> str:
    return TONES[verdict]


def message(finding: Finding, lang: str) -> str:
    return finding.message_en if lang == "en" else finding.message_vi


_DN_PART = re.compile(r", (?=[A-Z][A-Za-z ]*: )")


def name_parts(dn: str | None) -> dict[str, str]:
    """pyHanko's human-friendly name ("Common Name: X, Title: Y, ...") as {"Common Name": X, ...}."""
    parts: dict[str, str] = {}
    for piece in _DN_PART.split(dn or ""):
        key, sep, value = piece.partition(": ")
        if sep:
            parts.setdefault(key, value)
    return parts


def person(dn: str | None) -> tuple[str, str]:
    """(common name, title or organisation) of a certificate name; the whole name if it has no CN."""
    parts = name_parts(dn)
    if "Common Name" not in parts:
        return dn or "", ""
    name = parts["Common Name"]
    second = parts.get("Title") or parts.get("Organization", "")
    return name, "" if second == name else second


@dataclass(frozen=True)
class Reason:
    """Findings of one rule (and detail) over the fields where they fired."""

    text: str
    other: str
    fields: str
    detail: str
    finding: Finding


def grouped(findings: tuple[Finding, ...], lang: str) -> list[Reason]:
    """One line per rule: "revocation unknown" on five signatures is one reason naming five fields."""
    order: list[tuple[str, str]] = []
    fields: dict[tuple[str, str], list[str]] = {}
    first: dict[tuple[str, str], Finding] = {}
    for f in findings:
        key = (f.code, f.detail)
        if key not in first:
            order.append(key)
            first[key] = f
            fields[key] = []
        if f.field and f.field not in fields[key]:
            fields[key].append(f.field)
    out = []
    for key in order:
        f = first[key]
        other = f.message_vi if lang == "en" else f.message_en
        out.append(Reason(message(f, lang), other, ", ".join(label(FIELD_NAMES, n) for n in fields[key]),
                          f.detail, f))
    return out


def local_time(value: str | datetime | None, timezone: str, fmt: str = "%d/%m/%Y %H:%M") -> str:
    """An ISO 8601 time (or datetime) as the ward reads it: dd/mm/yyyy HH:MM in its time zone."""
    if not value:
        return ""
    try:
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    except ValueError:
        return str(value)
    if moment.tzinfo is None:
        return moment.strftime(fmt)
    return moment.astimezone(ZoneInfo(timezone)).strftime(fmt)


def label(names: dict[str, Any], key: str | None) -> str:
    if not key:
        return ""
    return str(names.get(key, key))


def signature_rows(report: Report, timezone: str) -> list[dict[str, Any]]:
    """One row per signature, every value a display string."""
    rows = []
    for s in report.signatures:
        rows.append({
            "field": label(FIELD_NAMES, s.field) or s.field,
            "field_code": s.field,
            "signer": person(s.signer)[0],
            "signer_title": person(s.signer)[1],
            "issuer": person(s.issuer)[0],
            "signed_at": local_time(s.signing_time, timezone),
            "timestamp": local_time(s.timestamp_time, timezone),
            "kind": label(KIND_NAMES, s.kind),
            "revocation": label(REVOCATION_NAMES, s.revocation),
            "modification": label(MODIFICATION_NAMES, s.modification_level) if s.modification_level else "",
            "verdict": s.verdict,
            "tone": TONES[s.verdict],
            "verdict_name": verdict_name(s.verdict),
        })
    return rows



def view(report: Report) -> dict[str, Any]:
    """What the verdict partial shows, in the user's language."""
    from esign.web.helpers import lang, web_settings

    language = lang()
    return {
        "verdict": report.verdict.name,
        "tone": tone(report.verdict),
        "name": verdict_name(report.verdict),
        "summary": verdict_summary(report.verdict),
        "reasons": grouped(report.reasons, language),
        "notes": grouped(report.info, language),
        "signatures": signature_rows(report, web_settings().app.timezone),
        "sha256": report.file_sha256,
        "size": report.size,
        "revisions": report.revisions,
    }
