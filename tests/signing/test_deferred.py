"""Deferred signing: the whole chain, restarts, and values that must be refused."""

from __future__ import annotations

import dataclasses
import io
import itertools
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.validation.status import SignatureCoverageLevel

from esign.errors import CertificateRefused, SignatureValueInvalid, SigningError
from esign.signing import deferred
from esign.signing.backend import SignRequest

from .conftest import PASSPHRASE, ROOT, at

Stamp = deferred.StampText
STEPS = [
    (
        "nguyenvana-token",
        deferred.SignatureSpec(
            "drafter",
            Stamp("", "Chuyên viên Văn phòng", "Nguyễn Văn An", at(8, 30)),
            certify=True,
            style="full",
            reason="Ký và gửi xin ý kiến",
            location="Bến Nghé",
        ),
    ),
    (
        "tranthibinh-mobile",
        deferred.SignatureSpec(
            "adviser_1",
            Stamp("", "Công chức Tư pháp – Hộ tịch", "Trần Thị Bình", at(9, 15)),
            style="initials",
            reason="Ký cho ý kiến",
        ),
    ),
    (
        "lequangcuong-token",
        deferred.SignatureSpec(
            "adviser_2",
            Stamp("", "Công chức Địa chính – Xây dựng", "Lê Quang Cường", at(9, 40)),
            style="initials",
            reason="Ký cho ý kiến",
        ),
    ),
    (
        "nguyenthiquynhtrieu-token",
        deferred.SignatureSpec(
            "chair",
            Stamp("TM. ỦY BAN NHÂN DÂN", "CHỦ TỊCH", "Nguyễn Thị Quỳnh Triều", at(10, 5)),
            style="full",
            lock="all_except",
            lock_except=("number", "date"),
            reason="Ký phê duyệt",
            location="Bến Nghé",
        ),
    ),
    (
        "agency-seal",
        deferred.SignatureSpec(
            "seal",
            Stamp("", "UBND Phường Bến Nghé", "UBND Phường Bến Nghé", at(14, 0)),
            style="seal",
            lock="all",
            fill={"number": "12/TTr-UBND", "date": "Bến Nghé, ngày 28 tháng 11 năm 2026"},
            reason="Cấp số và đóng dấu",
            location="Bến Nghé",
        ),
    ),
]


@pytest.fixture(scope="module")
def chain(first_revision: bytes, sign_step) -> list[bytes]:  # type: ignore[no-untyped-def]
    """r0 and every revision after it: drafter, two advisers, chair, clerk with the seal."""
    revisions = [first_revision]
    for credential, spec in STEPS:
        revisions.append(sign_step(revisions[-1], credential, spec))
    return revisions


def test_each_revision_is_a_prefix_of_the_next(chain: list[bytes]) -> None:
    for earlier, later in itertools.pairwise(chain):
        assert len(later) > len(earlier) and later.startswith(earlier)


def test_pyhanko_finds_every_signature_intact_valid_and_trusted(chain: list[bytes], checks) -> None:  # type: ignore[no-untyped-def]
    statuses = checks.pyhanko(chain[-1])
    assert len(statuses) == 5
    for status in statuses:
        assert status.intact and status.valid and status.trusted, status.pretty_print_details()
        assert status.docmdp_ok, status.pretty_print_details()
        assert status.modification_level in (ModificationLevel.NONE, ModificationLevel.FORM_FILLING)
        assert status.md_algorithm == "sha256"
        assert status.bottom_line
    assert statuses[-1].coverage == SignatureCoverageLevel.ENTIRE_FILE
    assert all(s.coverage == SignatureCoverageLevel.ENTIRE_REVISION for s in statuses[:-1])


def test_signatures_are_pades_with_the_steps_certification_and_locks(chain: list[bytes]) -> None:
    reader = PdfFileReader(io.BytesIO(chain[-1]))
    sigs = {s.field_name: s for s in reader.embedded_regular_signatures}
    assert set(sigs) == {"drafter", "adviser_1", "adviser_2", "chair", "seal"}
    assert all(s.sig_object["/SubFilter"] == "/ETSI.CAdES.detached" for s in sigs.values())
    assert sigs["drafter"].docmdp_level is not None and sigs["drafter"].docmdp_level.value == 2
    assert sigs["chair"].fieldmdp is not None
    assert set(sigs["chair"].fieldmdp.fields or ()) & {"number", "date"} == set()
    assert sigs["seal"].fieldmdp.action.name == "ALL"
    assert sigs["adviser_1"].signer_cert.public_key.algorithm == "ec"
    assert str(sigs["chair"].sig_object["/M"]).startswith("D:20261128100500+07")
    form = {str(r.get_object()["/T"]): r.get_object() for r in reader.root["/AcroForm"]["/Fields"]}
    assert str(form["number"]["/V"]) == "12/TTr-UBND"
    assert str(form["date"]["/V"]) == "Bến Nghé, ngày 28 tháng 11 năm 2026"


def test_pdfsig_reports_every_signature_valid(chain: list[bytes], checks) -> None:  # type: ignore[no-untyped-def]
    report = checks.pdfsig(chain[-1])
    assert report.count("Signature Validation: Signature is Valid.") == 5, report
    last = report.split("Signature #6:")[1]
    assert "Signature Field Name: seal" in last and "Total document signed" in last


def test_stamps_show_the_signers_in_vietnamese(chain: list[bytes], tmp_path: Path) -> None:
    path = tmp_path / "final.pdf"
    path.write_bytes(chain[-1])
    text = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout
    for phrase in (
        "Ký bởi: Nguyễn Thị Quỳnh Triều",
        "Thời gian ký: 2026-11-28T10:05:00+07:00",
        "Ký bởi: Trần Thị Bình",
        "ĐÃ KÝ SỐ",
        "12/TTr-UBND",
        "ngày 28 tháng 11 năm 2026",
    ):
        assert phrase in text


def test_prepared_survives_a_restart(
    first_revision: bytes, softkey, dev_pki: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    credential, spec = STEPS[0]
    bundle = softkey.certificate(credential)
    prepared = deferred.prepare_signature(first_revision, spec, bundle, timestamp=True)
    value = softkey.sign(
        SignRequest(credential=credential, tbs=prepared.tbs, mechanism=prepared.mechanism)
    )
    stored = tmp_path / "prepared.json"
    stored.write_text(prepared.to_json(), encoding="utf-8")
    (tmp_path / "value.bin").write_bytes(value.signature)
    # a fresh interpreter: nothing but the stored JSON and the value
    script = f"""
import sys
from pathlib import Path
sys.path.insert(0, {str(ROOT)!r})
from esign.signing import deferred
from esign.signing.softkey import SoftkeyBackend
prepared = deferred.Prepared.from_json(Path({str(stored)!r}).read_text(encoding="utf-8"))
bundle = SoftkeyBackend(Path({str(dev_pki)!r}), {PASSPHRASE!r}).certificate({credential!r})
out = deferred.finish_signature(prepared, Path({str(tmp_path / "value.bin")!r}).read_bytes(), bundle)
Path({str(tmp_path / "out.pdf")!r}).write_bytes(out)
"""
    subprocess.run([sys.executable, "-W", "error", "-c", script], check=True, timeout=60)
    out = (tmp_path / "out.pdf").read_bytes()
    assert out.startswith(first_revision)
    assert out[: prepared.reserved_start] == prepared.prepared_pdf[: prepared.reserved_start]
    assert deferred.Prepared.from_json(prepared.to_json()) == prepared


def test_prepared_holds_plain_values_only(first_revision: bytes, softkey) -> None:  # type: ignore[no-untyped-def]
    credential, spec = STEPS[0]
    prepared = deferred.prepare_signature(first_revision, spec, softkey.certificate(credential))
    for f in dataclasses.fields(prepared):
        assert isinstance(getattr(prepared, f.name), (bytes, int, str, bool))
    assert prepared.md_algorithm == "sha256" and prepared.mechanism == "rsassa_pkcs1v15"
    assert prepared.signing_time == "2026-11-28T08:30:00+07:00"
    # the services store the PDF separately: the JSON without it must still load
    light = dataclasses.replace(prepared, prepared_pdf=b"")
    assert deferred.Prepared.from_json(light.to_json()).tbs == prepared.tbs


def test_a_tampered_signature_value_is_refused(first_revision: bytes, softkey) -> None:  # type: ignore[no-untyped-def]
    credential, spec = STEPS[0]
    bundle = softkey.certificate(credential)
    prepared = deferred.prepare_signature(first_revision, spec, bundle)
    value = bytearray(softkey.sign(SignRequest(credential=credential, tbs=prepared.tbs)).signature)
    value[10] ^= 0x01
    with pytest.raises(SignatureValueInvalid, match="does not match the certificate of"):
        deferred.finish_signature(prepared, bytes(value), bundle)


def test_a_signature_from_another_key_is_refused(first_revision: bytes, softkey) -> None:  # type: ignore[no-untyped-def]
    credential, spec = STEPS[0]
    bundle = softkey.certificate(credential)
    prepared = deferred.prepare_signature(first_revision, spec, bundle)
    other = softkey.sign(SignRequest(credential="hoangvanem-token", tbs=prepared.tbs)).signature
    with pytest.raises(SignatureValueInvalid):
        deferred.finish_signature(prepared, other, bundle)


def test_a_changed_prepared_document_is_refused(first_revision: bytes, softkey) -> None:  # type: ignore[no-untyped-def]
    credential, spec = STEPS[0]
    bundle = softkey.certificate(credential)
    prepared = deferred.prepare_signature(first_revision, spec, bundle)
    value = softkey.sign(SignRequest(credential=credential, tbs=prepared.tbs)).signature
    pdf = bytearray(prepared.prepared_pdf)
    pdf[200] ^= 0x01
    with pytest.raises(SigningError, match="changed after it was prepared"):
        deferred.finish_signature(
            dataclasses.replace(prepared, prepared_pdf=bytes(pdf)), value, bundle
        )


def test_ecdsa_values_in_raw_form_are_accepted(first_revision: bytes, softkey, checks) -> None:  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    credential = "nguyenvana-mobile"
    spec = dataclasses.replace(STEPS[0][1])
    bundle = softkey.certificate(credential)
    prepared = deferred.prepare_signature(first_revision, spec, bundle)
    assert prepared.mechanism == "ecdsa"
    der = softkey.sign(
        SignRequest(credential=credential, tbs=prepared.tbs, mechanism="ecdsa")
    ).signature
    r, s = decode_dss_signature(der)
    out = deferred.finish_signature(prepared, r.to_bytes(32, "big") + s.to_bytes(32, "big"), bundle)
    (status,) = checks.pyhanko(out)
    assert status.bottom_line


def test_signing_a_field_twice_is_refused(chain: list[bytes], softkey) -> None:  # type: ignore[no-untyped-def]
    credential, spec = STEPS[1]
    with pytest.raises(SigningError, match="already signed"):
        deferred.prepare_signature(chain[-1], spec, softkey.certificate(credential))


def test_an_unknown_field_is_refused(first_revision: bytes, softkey) -> None:  # type: ignore[no-untyped-def]
    spec = dataclasses.replace(STEPS[0][1], field="vice_chair")
    with pytest.raises(SigningError, match="no signature field vice_chair"):
        deferred.prepare_signature(first_revision, spec, softkey.certificate("nguyenvana-token"))


def test_a_lock_the_field_was_not_prepared_for_is_refused(first_revision: bytes, softkey) -> None:  # type: ignore[no-untyped-def]
    spec = dataclasses.replace(STEPS[0][1], lock="all")
    with pytest.raises(SigningError, match="cannot lock the document"):
        deferred.prepare_signature(first_revision, spec, softkey.certificate("nguyenvana-token"))


def test_check_certificate_refuses_expired_and_future_certificates(softkey) -> None:  # type: ignore[no-untyped-def]
    bundle = softkey.certificate("nguyenthiquynhtrieu-token")
    deferred.check_certificate(bundle, at())
    with pytest.raises(CertificateRefused, match="expired on 2030-01-01T07:00:00\\+07:00"):
        deferred.check_certificate(bundle, datetime(2030, 1, 2, tzinfo=UTC))
    with pytest.raises(CertificateRefused, match="not valid yet"):
        deferred.check_certificate(bundle, datetime(2024, 6, 1, tzinfo=UTC))


def test_bytes_reserved_grows_for_a_timestamp(softkey) -> None:  # type: ignore[no-untyped-def]
    bundle = softkey.certificate("agency-seal")
    plain = deferred.bytes_reserved(bundle)
    assert plain % 1024 == 0
    assert (
        deferred.bytes_reserved(bundle, timestamp=True) - plain >= 2 * deferred.TIMESTAMP_HEADROOM
    )


def test_stamp_times_are_printed_in_vietnam_time() -> None:
    moment = datetime(2026, 11, 28, 3, 5, tzinfo=UTC)
    text = deferred.stamp_lines(
        Stamp("KT. CHỦ TỊCH", "PHÓ CHỦ TỊCH", "Lê Văn Hùng", moment), "full"
    )
    assert text.splitlines() == [
        "KT. CHỦ TỊCH",
        "PHÓ CHỦ TỊCH",
        "Ký bởi: Lê Văn Hùng",
        "Thời gian ký: 2026-11-28T10:05:00+07:00",
    ]
    with pytest.raises(ValueError):
        deferred.iso_time(datetime(2026, 1, 1) + timedelta())


def test_a_signature_timestamp_fits_the_room_left_for_it(
    first_revision: bytes, softkey, dev_pki: Path, checks
) -> None:  # type: ignore[no-untyped-def]
    from asn1crypto import keys, pem, x509
    from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper

    tsa = DummyTimeStamper(
        tsa_cert=x509.Certificate.load(pem.unarmor((dev_pki / "tsa.cert.pem").read_bytes())[2]),
        tsa_key=keys.PrivateKeyInfo.load(
            pem.unarmor((dev_pki / "keys" / "tsa.key.pem").read_bytes())[2]
        ),
        fixed_dt=at(8, 31),
    )
    credential, spec = STEPS[0]
    bundle = softkey.certificate(credential)
    prepared = deferred.prepare_signature(first_revision, spec, bundle, timestamp=True)
    value = softkey.sign(SignRequest(credential=credential, tbs=prepared.tbs)).signature
    out = deferred.finish_signature(prepared, value, bundle, timestamper=tsa)
    (status,) = checks.pyhanko(out)
    assert status.bottom_line and status.timestamp_validity is not None
    assert status.timestamp_validity.intact and status.timestamp_validity.valid


def test_check_certificate_asks_ocsp_and_refuses_a_revoked_certificate(
    softkey, root_cert, pki_services
) -> None:  # type: ignore[no-untyped-def]
    def context(mode: str = "hard-fail"):  # type: ignore[no-untyped-def]
        return deferred.validation_context([root_cert], revocation=mode)

    now = datetime.now(UTC)
    deferred.check_certificate(
        softkey.certificate("tranthibinh-token"), now, validation_context=context()
    )
    deferred.check_certificate(
        softkey.certificate("tranthibinh-mobile"), now, validation_context=context()
    )
    revoked = softkey.certificate("revoked-token")
    deferred.check_certificate(revoked, now)  # without a context: dates and key usage only
    with pytest.raises(CertificateRefused, match="was revoked on 2025-06-01T07:00:00\\+07:00"):
        deferred.check_certificate(revoked, now, validation_context=context("soft-fail"))
    with pki_services.stopped():
        with pytest.raises(CertificateRefused, match="cannot be checked now"):
            deferred.check_certificate(
                softkey.certificate("tranthibinh-token"), now, validation_context=context()
            )
        deferred.check_certificate(
            softkey.certificate("tranthibinh-token"), now, validation_context=context("soft-fail")
        )


def test_finish_with_a_tsa_appends_the_validation_data_after_the_signature(
    first_revision: bytes, softkey, root_cert, pki_services
) -> None:  # type: ignore[no-untyped-def]
    from pyhanko.sign.validation.dss import DocumentSecurityStore

    credential, spec = STEPS[0]
    bundle = softkey.certificate(credential)
    prepared = deferred.prepare_signature(first_revision, spec, bundle, timestamp=True)
    value = softkey.sign(SignRequest(credential=credential, tbs=prepared.tbs)).signature
    out = deferred.finish_signature(
        prepared,
        value,
        bundle,
        timestamper=deferred.timestamper(pki_services.tsa_url),
        validation_context=deferred.validation_context([root_cert]),
    )
    assert out.startswith(prepared.prepared_pdf[: prepared.reserved_start])
    reader = PdfFileReader(io.BytesIO(out))
    before = PdfFileReader(io.BytesIO(first_revision)).xrefs.total_revisions
    assert reader.xrefs.total_revisions == before + 2  # the signature, then the DSS update
    (embedded,) = reader.embedded_regular_signatures
    dss = DocumentSecurityStore.read_dss(reader)
    assert embedded.signer_cert.dump() in {c.dump() for c in dss.load_certs()}
    assert dss.ocsps and dss.crls
    # a request prepared without room for a timestamp cannot take one
    plain = deferred.prepare_signature(first_revision, spec, bundle)
    with pytest.raises(SigningError, match="without room for a timestamp"):
        deferred.finish_signature(
            plain, value, bundle, timestamper=deferred.timestamper(pki_services.tsa_url)
        )


def test_a_crl_is_fetched_once_for_several_checks_and_again_once_stale(
    softkey, root_cert, pki_services, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """OCSP about the signer every time; the intermediate CA's CRL from memory while fresh."""
    from esign.signing import crls

    bundle = softkey.certificate("tranthibinh-token")
    now = datetime.now(UTC)
    crls.forget()
    before = pki_services.answered(".crl"), pki_services.answered("/ocsp/gov-ca")
    contexts = [deferred.validation_context([root_cert]) for _ in range(3)]
    for vc in contexts:
        deferred.check_certificate(bundle, now, validation_context=vc)
    assert pki_services.answered(".crl") - before[0] == 1
    assert pki_services.answered("/ocsp/gov-ca") - before[1] == 3
    # a CRL from memory still counts among what that validation fetched (it goes into a document)
    assert [c.dump() for c in contexts[2].crls] == [c.dump() for c in contexts[0].crls] != []
    # never kept past the list's own nextUpdate
    fetched = contexts[0].crls[0]
    next_update = fetched["tbs_cert_list"]["next_update"].native.timestamp()
    assert crls._usable_until(fetched, next_update - 10, 1000.0) == 1010.0
    assert crls._usable_until(fetched, next_update + 1, 1000.0) == 1000.0

    monkeypatch.setattr(crls, "KEEP_SECONDS", 0.0)
    crls.forget()
    for _ in range(2):
        deferred.check_certificate(bundle, now, validation_context=deferred.validation_context([root_cert]))
    assert pki_services.answered(".crl") - before[0] == 3
