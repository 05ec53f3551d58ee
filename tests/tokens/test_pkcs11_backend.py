"""The pkcs11 backend on real SoftHSM2 tokens: signing, chains and the officer's errors."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding

from esign.errors import BackendError, TokenUnavailable, UnknownCredential, WrongPin
from esign.signing.backend import Backend, Signed, SignRequest
from esign.signing.pkcs11 import Pkcs11Backend, token_labels
from tests.tokens.conftest import MODULE, PIN, signed_attributes


@pytest.fixture
def backend(tokens: Any) -> Pkcs11Backend:
    return Pkcs11Backend(MODULE, "nguyenvana", None)


def _public_key(backend: Pkcs11Backend, credential: str) -> Any:
    return serialization.load_der_public_key(backend.certificate(credential).cert.public_key.dump())


def test_pkcs11_is_a_backend_listing_the_signers_on_its_token(backend: Pkcs11Backend) -> None:
    assert isinstance(backend, Backend)
    assert backend.name == "pkcs11"
    assert backend.available_credentials() == ["nguyenvana-mobile", "nguyenvana-token"]
    assert backend.token_present()
    assert set(token_labels(MODULE)) == {"agency-seal", "nguyenvana", "tranthibinh"}


def test_certificate_comes_with_its_chain_from_the_token(backend: Pkcs11Backend) -> None:
    bundle = backend.certificate("nguyenvana-token")
    assert bundle.cert.subject.native["common_name"] == "Nguyễn Văn An"
    assert [c.subject.native["common_name"] for c in bundle.chain] == [
        "Government specialised CA (dev)",
        "Root CA (dev) standing in for the national root",
    ]


def test_rsa_signature_of_the_tbs_verifies_with_the_certificate(backend: Pkcs11Backend) -> None:
    tbs = signed_attributes()
    answer = backend.sign(SignRequest(credential="nguyenvana-token", tbs=tbs, pin=PIN))
    assert isinstance(answer, Signed)
    _public_key(backend, "nguyenvana-token").verify(
        answer.signature, tbs, padding.PKCS1v15(), hashes.SHA256()
    )


def test_ecdsa_is_hashed_here_and_signed_raw_then_der_encoded(backend: Pkcs11Backend) -> None:
    # SoftHSM has no CKM_ECDSA_SHA256: the backend falls back to the raw mechanism
    tbs = signed_attributes(b"another byte range")
    answer = backend.sign(
        SignRequest(credential="nguyenvana-mobile", tbs=tbs, mechanism="ecdsa", pin=PIN)
    )
    assert isinstance(answer, Signed)
    assert answer.signature[0] == 0x30  # a DER SEQUENCE, not r||s
    _public_key(backend, "nguyenvana-mobile").verify(
        answer.signature, tbs, ec.ECDSA(hashes.SHA256())
    )


def test_pin_comes_from_the_configured_environment_variable(tokens: Any) -> None:
    seal = Pkcs11Backend(MODULE, "agency-seal", "ESIGN_SEAL_PIN", env={"ESIGN_SEAL_PIN": PIN})
    tbs = signed_attributes()
    answer = seal.sign(SignRequest(credential="agency-seal", tbs=tbs))
    assert isinstance(answer, Signed)
    _public_key(seal, "agency-seal").verify(
        answer.signature, tbs, padding.PKCS1v15(), hashes.SHA256()
    )
    assert PIN not in repr(seal)


def test_a_missing_pin_names_the_environment_variable(tokens: Any) -> None:
    seal = Pkcs11Backend(MODULE, "agency-seal", "ESIGN_SEAL_PIN", env={})
    with pytest.raises(WrongPin, match="ESIGN_SEAL_PIN"):
        seal.sign(SignRequest(credential="agency-seal", tbs=signed_attributes()))


def test_wrong_pin_is_a_clear_wrong_pin_error(backend: Pkcs11Backend) -> None:
    with pytest.raises(WrongPin, match="PIN of token nguyenvana is wrong") as caught:
        backend.sign(SignRequest(credential="nguyenvana-token", tbs=b"x", pin="000000"))
    assert "000000" not in str(caught.value)
    assert caught.value.status == 401
    # the failed login leaves the token usable
    assert isinstance(
        backend.sign(SignRequest(credential="nguyenvana-token", tbs=b"x", pin=PIN)), Signed
    )


def test_a_token_that_is_not_there_is_token_unavailable(tokens: Any) -> None:
    absent = Pkcs11Backend(MODULE, "nobody-token", None)
    with pytest.raises(TokenUnavailable, match="not plugged in"):
        absent.sign(SignRequest(credential="x", tbs=b"x", pin=PIN))
    with pytest.raises(TokenUnavailable):
        absent.certificate("x")
    assert not absent.token_present()


def test_a_module_that_does_not_load_is_token_unavailable() -> None:
    with pytest.raises(TokenUnavailable, match="could not be loaded"):
        Pkcs11Backend("/nonexistent/libtoken.so", "t", None).token_present()


def test_an_unknown_key_label_is_unknown_credential(backend: Pkcs11Backend) -> None:
    with pytest.raises(
        UnknownCredential, match="no signing key tranthibinh-token on token nguyenvana"
    ):
        backend.sign(SignRequest(credential="tranthibinh-token", tbs=b"x", pin=PIN))
    with pytest.raises(UnknownCredential):
        backend.certificate("tranthibinh-token")


def test_a_mechanism_the_key_cannot_do_is_refused(backend: Pkcs11Backend) -> None:
    with pytest.raises(BackendError, match="cannot sign with ecdsa"):
        backend.sign(
            SignRequest(credential="nguyenvana-token", tbs=b"x", mechanism="ecdsa", pin=PIN)
        )
    with pytest.raises(BackendError, match="SHA-256"):
        backend.sign(
            SignRequest(credential="nguyenvana-token", tbs=b"x", md_algorithm="sha1", pin=PIN)
        )


def test_parallel_signatures_on_one_token_are_serialised(tokens: Any) -> None:
    # a second login on the same token would fail with UserAlreadyLoggedIn without the lock
    backends = [Pkcs11Backend(MODULE, "nguyenvana", None) for _ in range(2)]
    errors: list[BaseException] = []

    def work(b: Pkcs11Backend) -> None:
        try:
            for _ in range(10):
                b.sign(SignRequest(credential="nguyenvana-token", tbs=b"x", pin=PIN))
                b.sign(
                    SignRequest(
                        credential="nguyenvana-mobile", tbs=b"y", mechanism="ecdsa", pin=PIN
                    )
                )
        except BaseException as e:  # noqa: BLE001 -- collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(b,)) for b in backends * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
