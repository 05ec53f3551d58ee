"""The csc backend against esign-remote: phone confirmation, decline, expiry, wrong PIN,
SAD binding, a restart while a confirmation is pending, and a batch under one authorization."""

from __future__ import annotations

import base64
import hashlib
import re
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from esign.errors import (
    BackendError,
    BackendExpired,
    Declined,
    PinLocked,
    UnknownCredential,
    WrongPin,
)
from esign.signing.backend import Backend, Pending, Signed, SignRequest
from esign.signing.csc import CscBackend
from tests.remote.conftest import (
    CLIENT_ID,
    CLIENT_SECRET,
    PIN,
    Phone,
    RemoteService,
    call,
    confirm_url,
    fresh_otp,
    login,
    start_service,
    verify_value,
)
from tests.tokens.conftest import signed_attributes

OFFICER = "nguyenvana-mobile"
CHAIR = "nguyenthiquynhtrieu-mobile"
RSA = "tranthibinh-rsa"


def backend_for(service: RemoteService) -> CscBackend:
    return CscBackend(service.url, CLIENT_ID, CLIENT_SECRET)


def request_for(
    credential: str,
    payload: bytes,
    title: str = "Tờ trình sửa chữa nhà văn hóa",
    pin: str | None = None,
) -> SignRequest:
    mechanism = "rsassa_pkcs1v15" if credential == RSA else "ecdsa"
    return SignRequest(
        credential=credential,
        tbs=signed_attributes(payload),
        mechanism=mechanism,
        label=title,
        pin=pin,
    )


def test_backend_lists_credentials_and_reads_the_chain(service: RemoteService) -> None:
    backend = backend_for(service)
    assert isinstance(backend, Backend)
    assert backend.name == "csc"
    assert backend.credentials() == sorted([OFFICER, CHAIR, RSA])
    assert backend.credentials("nguyenvana") == [OFFICER]
    bundle = backend.certificate(OFFICER)
    assert bundle.cert.subject.native["common_name"] == "Nguyễn Văn An"
    assert bundle.cert.public_key.algorithm == "ec"
    assert next(c.subject.native["common_name"] for c in bundle.chain).startswith("Public CA")
    with pytest.raises(UnknownCredential):
        backend.certificate("nobody-mobile")


@pytest.mark.parametrize("credential", [OFFICER, RSA])
def test_sign_with_pin_answers_at_once(service: RemoteService, credential: str) -> None:
    backend = backend_for(service)
    request = request_for(credential, b"with PIN " + credential.encode(), pin=PIN)
    answer = backend.sign(request)
    assert isinstance(answer, Signed)
    verify_value(backend.certificate(credential), request.tbs, answer.signature)


def test_phone_confirmation_completes(service: RemoteService, phone: Phone) -> None:
    backend = backend_for(service)
    request = request_for(OFFICER, b"confirmed on the phone", title="Tờ trình số 12/TTr-VP")
    answer = backend.sign(request)
    assert isinstance(answer, Pending)
    code = re.fullmatch(r"Xác nhận trên điện thoại \(mã ([A-Z2-9]{4})\)", answer.message)
    assert code is not None, answer.message
    assert answer.expires_at is not None
    assert backend.confirmation_url(answer.ref) == confirm_url(service, answer.ref)
    assert isinstance(backend.collect(answer.ref), Pending)

    status, headers, page = phone.get(confirm_url(service, answer.ref))
    assert status == 200
    assert code.group(1) in page and "Tờ trình số 12/TTr-VP" in page and "Nguyễn Văn An" in page
    assert "<script" not in page and "otp" not in page  # no TOTP for this officer
    assert "script-src" not in headers["Content-Security-Policy"]
    assert "default-src 'none'" in headers["Content-Security-Policy"]

    status, page = phone.answer(confirm_url(service, answer.ref))
    assert status == 200 and "Đã xác nhận" in page
    done = backend.collect(answer.ref)
    assert isinstance(done, Signed)
    verify_value(backend.certificate(OFFICER), request.tbs, done.signature)
    with pytest.raises(BackendError, match="already used"):
        backend.collect(answer.ref)


def test_confirm_page_refuses_a_post_without_its_csrf_token(
    service: RemoteService, phone: Phone
) -> None:
    answer = backend_for(service).sign(request_for(OFFICER, b"csrf"))
    assert isinstance(answer, Pending)
    url = confirm_url(service, answer.ref)
    status, _ = Phone().post(url, {"action": "confirm", "pin": PIN})
    assert status == 400
    assert isinstance(backend_for(service).collect(answer.ref), Pending)


def test_declined_on_the_phone_ends_in_declined(service: RemoteService, phone: Phone) -> None:
    backend = backend_for(service)
    answer = backend.sign(request_for(OFFICER, b"declined"))
    assert isinstance(answer, Pending)
    status, page = phone.answer(confirm_url(service, answer.ref), action="decline", pin="")
    assert status == 200 and "Đã từ chối" in page
    with pytest.raises(Declined, match="declined the signature on the phone"):
        backend.collect(answer.ref)


def test_wrong_pin_with_the_request_is_refused(service: RemoteService) -> None:
    with pytest.raises(WrongPin, match="PIN is wrong"):
        backend_for(service).sign(request_for(OFFICER, b"wrong pin", pin="999999"))


def test_wrong_pins_on_the_phone_then_the_request_fails(
    service: RemoteService, phone: Phone
) -> None:
    backend = backend_for(service)
    answer = backend.sign(request_for(OFFICER, b"three wrong PINs"))
    assert isinstance(answer, Pending)
    url = confirm_url(service, answer.ref)
    status, page = phone.answer(url, pin="000000")
    assert status == 400 and "Mã PIN không đúng. Còn 2 lần thử." in page
    assert isinstance(backend.collect(answer.ref), Pending)  # still open: try again
    phone.answer(url, pin="000001")
    status, page = phone.answer(url, pin="000002")
    assert "quá số lần cho phép" in page
    with pytest.raises(WrongPin, match="too many times"):
        backend.collect(answer.ref)


def test_consecutive_wrong_pins_lock_the_credential(remote_tokens: Any, tmp_path: Path) -> None:
    locking = start_service(remote_tokens, tmp_path / "lock", settings={"max_pin_failures": 2})
    try:
        backend = backend_for(locking)
        for attempt in range(2):
            with pytest.raises(WrongPin):
                backend.sign(request_for(RSA, f"wrong {attempt}".encode(), pin="999999"))
        with pytest.raises(PinLocked, match="locked"):
            backend.sign(request_for(RSA, b"right PIN, too late", pin=PIN))
    finally:
        locking.stop()


def test_sad_is_bound_to_its_hashes_and_used_once(service: RemoteService) -> None:
    token = login(service.url)
    authorized = base64.b64encode(hashlib.sha256(b"authorized").digest()).decode()
    other = base64.b64encode(hashlib.sha256(b"something else").digest()).decode()
    status, payload = call(
        service.url,
        "credentials/authorize",
        {"credentialID": OFFICER, "numSignatures": 1, "hash": [authorized], "PIN": PIN},
        token,
    )
    assert status == 200, payload
    sad = payload["SAD"]
    sign = {"credentialID": OFFICER, "SAD": sad, "signAlgo": "1.2.840.10045.4.3.2"}

    status, payload = call(service.url, "signatures/signHash", {**sign, "hash": [other]}, token)
    assert status == 400 and payload["error_description"] == "A hash was not authorized by this SAD"
    status, payload = call(
        service.url, "signatures/signHash", {**sign, "hash": [authorized, other]}, token
    )
    assert status == 400
    forged = sad[:-2] + ("AA" if not sad.endswith("AA") else "BB")
    status, _ = call(
        service.url, "signatures/signHash", {**sign, "SAD": forged, "hash": [authorized]}, token
    )
    assert status == 400
    status, payload = call(
        service.url, "signatures/signHash", {**sign, "hash": [authorized]}, token
    )
    assert status == 200 and len(payload["signatures"]) == 1
    status, payload = call(
        service.url, "signatures/signHash", {**sign, "hash": [authorized]}, token
    )
    assert status == 400 and "already used" in payload["error_description"]
    # another client application cannot use it either, nor can anyone without a token
    status, _ = call(service.url, "signatures/signHash", {**sign, "hash": [authorized]})
    assert status == 401


def test_client_application_must_authenticate(service: RemoteService) -> None:
    status, payload = call(service.url, "credentials/list", {})
    assert status == 401 and payload["error"] == "invalid_token"
    with pytest.raises(BackendError, match="refused esign's client credentials"):
        CscBackend(service.url, CLIENT_ID, "not the secret").credentials()


def test_batch_of_three_under_one_confirmation_with_totp(
    service: RemoteService, phone: Phone
) -> None:
    backend = backend_for(service)
    titles = ["Quyết định 1", "Quyết định 2", "Báo cáo quý I"]
    requests = [request_for(CHAIR, t.encode(), title=t) for t in titles]
    answer = backend.sign_many(requests)
    assert isinstance(answer, Pending)
    url = confirm_url(service, answer.ref)
    _, _, page = phone.get(url)
    assert all(t in page for t in titles) and 'name="otp"' in page

    otp = fresh_otp(service)
    status, page = phone.answer(url, otp="000000" if otp != "000000" else "111111")
    assert status == 400 and "OTP" in page
    status, page = phone.answer(url, otp=otp)
    assert status == 200 and "Đã xác nhận" in page, page

    values = backend.collect_many(answer.ref)
    assert isinstance(values, list) and len(values) == 3
    bundle = backend.certificate(CHAIR)
    for request, value in zip(requests, values, strict=True):
        verify_value(bundle, request.tbs, value.signature)


def test_one_document_of_a_batch_is_collected_alone(service: RemoteService, phone: Phone) -> None:
    backend = backend_for(service)
    requests = [request_for(OFFICER, f"item {i}".encode(), title=f"Văn bản {i}") for i in range(2)]
    answer = backend.sign_many(requests)
    assert isinstance(answer, Pending)
    phone.answer(confirm_url(service, answer.ref))
    second = backend.collect(CscBackend.item_ref(answer.ref, 1))
    first = backend.collect(CscBackend.item_ref(answer.ref, 0))
    assert isinstance(first, Signed) and isinstance(second, Signed)
    verify_value(backend.certificate(OFFICER), requests[0].tbs, first.signature)
    verify_value(backend.certificate(OFFICER), requests[1].tbs, second.signature)


def test_confirmation_expires(remote_tokens: Any, tmp_path: Path, phone: Phone) -> None:
    short = start_service(remote_tokens, tmp_path / "short", ttl=1)
    try:
        backend = backend_for(short)
        answer = backend.sign(request_for(OFFICER, b"too late"))
        assert isinstance(answer, Pending)
        time.sleep(1.2)
        _, _, page = phone.get(confirm_url(short, answer.ref))
        assert "đã hết hạn" in page and 'name="pin"' not in page
        with pytest.raises(BackendExpired, match="expired"):
            backend.collect(answer.ref)
    finally:
        short.stop()


def test_restart_while_a_confirmation_is_pending(
    remote_tokens: Any, tmp_path: Path, phone: Phone
) -> None:
    first = start_service(remote_tokens, tmp_path / "a")
    try:
        answer = backend_for(first).sign(request_for(OFFICER, b"survives a restart"))
        assert isinstance(answer, Pending)
    finally:
        first.stop()
    # a new process on the same database (and port), and a new esign process as well
    second = start_service(remote_tokens, tmp_path / "a", port=first.port)
    try:
        status, page = phone.answer(confirm_url(second, answer.ref))
        assert status == 200 and "Đã xác nhận" in page
        backend = backend_for(second)
        done = backend.collect(answer.ref)
        assert isinstance(done, Signed)
        verify_value(
            backend.certificate(OFFICER), signed_attributes(b"survives a restart"), done.signature
        )
    finally:
        second.stop()
    log = second.log.read_text()
    assert PIN not in log


def test_audit_log_is_append_only_and_chained(service: RemoteService) -> None:
    # events of its own: the other tests of this module may run in other pytest workers
    backend = backend_for(service)
    assert isinstance(backend.sign(request_for(OFFICER, b"audited", pin=PIN)), Signed)
    database = service.config.parent / "remote.db"
    with sqlite3.connect(database) as db:
        events = [r[0] for r in db.execute("SELECT event FROM audit ORDER BY seq")]
        assert "login" in events and "authorize.pin" in events and "sign.released" in events
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute("UPDATE audit SET event = 'x'")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute("DELETE FROM audit")
        texts = " ".join(r[0] for r in db.execute("SELECT detail FROM audit"))
    db.close()
    assert PIN not in texts
    from esign.remote.store import Store

    assert Store(database).check_audit() == []
