"""Hostile variants of a real signed chain: each attack class gets the right verdict and reason."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from esign.verify import Report, TrustStore, Verdict, verify_pdf
from tests.verify import hostile
from tests.verify.chain import Chain


def check(data: bytes, trust: TrustStore) -> Report:
    report = verify_pdf(data, trust)
    assert report.to_dict()["verdict"] == report.verdict.name
    return report


def test_the_real_chain_is_valid(chain: Chain, trust: TrustStore) -> None:
    report = check(chain.final, trust)
    assert report.verdict is Verdict.VALID, report.reasons
    fields = [s.field for s in report.signatures if s.kind != "timestamp"]
    assert fields == ["drafter", "adviser_1", "adviser_2", "chair", "seal"]
    first = report.signatures[0]
    assert first.kind == "certification" and first.docmdp == "P=2"
    assert all(
        s.revocation == "good" and s.trusted for s in report.signatures if s.kind != "timestamp"
    )
    assert all(s.timestamp_time for s in report.signatures)
    assert report.signatures[3].fieldmdp.startswith("INCLUDE")
    assert report.signatures[4].fieldmdp == "ALL"
    assert all(s.coverage == "ENTIRE_REVISION" for s in report.signatures)


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_every_intermediate_revision_is_valid(chain: Chain, trust: TrustStore, k: int) -> None:
    assert check(chain.revisions[k], trust).verdict is Verdict.VALID


def test_unsigned_first_revision_is_unsigned(chain: Chain, trust: TrustStore) -> None:
    report = check(chain.revisions[0], trust)
    assert report.verdict is Verdict.UNSIGNED
    assert "document.unsigned" in report.codes


FINAL: dict[str, tuple[Callable[[bytes], bytes], Verdict, set[str]]] = {
    "bytes_after_last_revision": (
        hostile.appended_bytes,
        Verdict.MODIFIED,
        {"file.trailing_bytes"},
    ),
    "incremental_saving_attack": (
        hostile.incremental_saving,
        Verdict.INVALID,
        {"revision.unsigned", "docmdp.violation"},
    ),
    "shadow_hide_and_replace": (
        hostile.shadow_replace,
        Verdict.INVALID,
        {"revision.unsigned", "docmdp.violation"},
    ),
    "locked_field_blanked": (
        lambda d: hostile.set_field(d, "number", ""),
        Verdict.INVALID,
        {"fieldmdp.violation", "field.changed_after_signing"},
    ),
    "locked_field_changed": (
        lambda d: hostile.set_field(d, "date", "2020-01-01"),
        Verdict.INVALID,
        {"fieldmdp.violation"},
    ),
    "evil_annotation": (
        hostile.add_annotation,
        Verdict.INVALID,
        {"annotation.added", "revision.unsigned"},
    ),
    "signature_stripped": (
        lambda d: hostile.strip_signature_field(d, "adviser_2"),
        Verdict.INVALID,
        {"signature.stripped"},
    ),
    "tampered_signed_byte": (
        hostile.tamper_signed_byte,
        Verdict.INVALID,
        {"signature.digest_mismatch"},
    ),
}

CERTIFIED: dict[str, tuple[Callable[[bytes], bytes], Verdict, set[str]]] = {
    "evil_annotation_after_certification": (
        hostile.add_annotation,
        Verdict.INVALID,
        {"annotation.added", "docmdp.violation"},
    ),
    "unknown_subfilter_not_skipped": (
        hostile.unknown_subfilter,
        Verdict.INVALID,
        {"signature.unknown_subfilter"},
    ),
    "signature_wrapping": (hostile.wrapped_signature, Verdict.INVALID, {"signature.coverage"}),
    "usf_zeroed_contents": (hostile.zeroed_contents, Verdict.INVALID, {"signature.unreadable"}),
    "usf_null_byte_range": (hostile.null_byte_range, Verdict.INVALID, {"signature.byte_range"}),
    "sneaky_signature": (
        hostile.sneaky_signature,
        Verdict.INVALID,
        {"field.added_after_signing", "signature.untrusted"},
    ),
}


@pytest.mark.parametrize("name", sorted(FINAL))
def test_attack_on_the_issued_document(chain: Chain, trust: TrustStore, name: str) -> None:
    make, verdict, codes = FINAL[name]
    report = check(make(chain.final), trust)
    assert report.verdict is verdict, [f.code for f in report.reasons]
    assert codes <= report.codes


@pytest.mark.parametrize("name", sorted(CERTIFIED))
def test_attack_on_the_certified_draft(chain: Chain, trust: TrustStore, name: str) -> None:
    make, verdict, codes = CERTIFIED[name]
    report = check(make(chain.revisions[1]), trust)
    assert report.verdict is verdict, [f.code for f in report.reasons]
    assert codes <= report.codes
    # the attacked signature is reported, never skipped
    assert any(s.field == "drafter" for s in report.signatures)


def test_usf_empty_contents(chain: Chain, trust: TrustStore) -> None:
    data = chain.revisions[1]
    start, end = hostile.sig_holes(data)[0]
    forged = data[:start] + b"<>" + b" " * (end - start - 2) + data[end:]
    report = check(forged, trust)
    assert report.verdict is Verdict.INVALID
    assert "signature.unreadable" in report.codes


def test_plain_pyhanko_loop_misses_what_we_catch(chain: Chain, trust: TrustStore) -> None:
    """The bottom line of pyHanko's own loop passes appended bytes; ours does not."""
    import io

    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    data = hostile.appended_bytes(chain.revisions[4])
    reader = PdfFileReader(io.BytesIO(data), strict=False)
    statuses = [
        validate_pdf_signature(e, ValidationContext(trust_roots=list(trust.roots)))
        for e in reader.embedded_regular_signatures
    ]
    assert all(s.bottom_line for s in statuses)
    assert check(data, trust).verdict is Verdict.MODIFIED


def test_untrusted_root(chain: Chain, tmp_path) -> None:  # type: ignore[no-untyped-def]
    other = TrustStore.from_pem_files([hostile.self_made_root_pem(tmp_path)])
    report = check(chain.final, other)
    assert report.verdict is Verdict.UNTRUSTED
    assert "signature.untrusted" in report.codes
    assert all(s.trusted is False for s in report.signatures if s.kind != "timestamp")


def test_unknown_revocation_is_reported_and_can_be_required(chain: Chain) -> None:
    """Without the document's validation data (revision 1 has it; the bare signature does not)."""
    from tests.verify.chain import build_chain

    bare = build_chain(chain.pki, tsa_url=None, revinfo=False).revisions[1]
    lenient = TrustStore.from_pem_files([chain.root])
    report = check(bare, lenient)
    assert report.verdict is Verdict.VALID
    assert report.signatures[0].revocation == "unknown"
    assert "signature.revocation_unknown" in report.codes
    strict = TrustStore.from_pem_files([chain.root], require_revocation=True)
    assert check(bare, strict).verdict is Verdict.UNTRUSTED


MALFORMED: dict[str, tuple[Callable[[bytes], bytes], str]] = {
    "not_a_pdf": (lambda d: b"<html>hello</html>" * 50, "pdf.not_pdf"),
    "truncated": (lambda d: d[: len(d) // 2], "pdf.unreadable"),
    "deep_nesting": (lambda d: hostile.deep_nesting(10_000), "pdf.too_deep"),
    "deflate_bomb": (lambda d: hostile.deflate_bomb(400), "pdf.decode_limit"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_inputs_fail_fast(chain: Chain, trust: TrustStore, name: str) -> None:
    make, code = MALFORMED[name]
    data = make(chain.final)
    started = time.perf_counter()
    report = check(data, trust)
    assert time.perf_counter() - started < 3.0
    assert report.verdict is Verdict.MALFORMED
    assert code in report.codes


def test_too_large_is_refused_before_parsing(chain: Chain, trust: TrustStore) -> None:
    from esign.verify import Limits

    report = verify_pdf(chain.final, trust, limits=Limits(max_bytes=1000))
    assert report.verdict is Verdict.MALFORMED and "pdf.too_large" in report.codes


def test_every_rule_speaks_both_languages() -> None:
    from esign.verify import RULES

    for rule in RULES.values():
        assert rule.en and rule.vi and rule.en != rule.vi
