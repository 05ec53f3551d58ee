"""The softkey backend: development PKCS#12 files behind the backend interface."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding

from esign.errors import UnknownCredential
from esign.signing.backend import Backend, Signed, SignRequest
from esign.signing.softkey import SoftkeyBackend


def test_softkey_is_a_backend_that_lists_its_credentials(softkey: SoftkeyBackend) -> None:
    assert isinstance(softkey, Backend)
    assert softkey.name == "softkey"
    names = softkey.available_credentials()
    assert "agency-seal" in names and "nguyenvana-token" in names and "tranthibinh-mobile" in names
    assert "esign-dev" not in repr(softkey)


def test_softkey_signs_at_once_with_rsa_and_ecdsa(softkey: SoftkeyBackend) -> None:
    tbs = b"signed attributes"
    answer = softkey.sign(SignRequest(credential="hoangvanem-token", tbs=tbs))
    assert isinstance(answer, Signed)
    key = serialization.load_der_public_key(
        softkey.certificate("hoangvanem-token").cert.public_key.dump()
    )
    key.verify(answer.signature, tbs, padding.PKCS1v15(), hashes.SHA256())  # type: ignore[call-arg, union-attr]
    answer = softkey.sign(SignRequest(credential="hoangvanem-mobile", tbs=tbs, mechanism="ecdsa"))
    assert isinstance(answer, Signed)
    key = serialization.load_der_public_key(
        softkey.certificate("hoangvanem-mobile").cert.public_key.dump()
    )
    key.verify(answer.signature, tbs, ec.ECDSA(hashes.SHA256()))  # type: ignore[call-arg, union-attr]


def test_softkey_loads_each_key_once(softkey: SoftkeyBackend) -> None:
    assert softkey.certificate("nguyenvana-token") is softkey.certificate("nguyenvana-token")


@pytest.mark.parametrize("credential", ["nobody-token", "../root", ""])
def test_softkey_refuses_unknown_credentials(softkey: SoftkeyBackend, credential: str) -> None:
    with pytest.raises(UnknownCredential):
        softkey.certificate(credential)


def test_softkey_chain_leads_to_the_root(softkey: SoftkeyBackend, dev_pki: Path) -> None:
    bundle = softkey.certificate("nguyenthiquynhtrieu-mobile")
    subjects = {c.subject.native["common_name"] for c in bundle.chain}
    assert "Public CA for mobile certificates (dev)" in subjects
    assert "Root CA (dev) standing in for the national root" in subjects
