"""The development PKI: complete, chained to the root, and idempotent."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from asn1crypto import pem, x509

from .conftest import load_pki_module

SIGNERS = [
    f"{user}-{device}"
    for user in ("nguyenvana", "tranthibinh", "lequangcuong", "nguyenthiquynhtrieu", "hoangvanem")
    for device in ("token", "mobile")
] + ["agency-seal"]


def _cert(path: Path) -> x509.Certificate:
    return x509.Certificate.load(pem.unarmor(path.read_bytes())[2])


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_make_dev_pki_twice_changes_nothing(tmp_path: Path) -> None:
    module = load_pki_module()
    module.make_dev_pki(tmp_path, port=9791)
    first = _snapshot(tmp_path)
    module.make_dev_pki(tmp_path, port=9791)
    assert _snapshot(tmp_path) == first


def test_make_dev_pki_writes_every_credential_and_the_services(dev_pki: Path, pki_services) -> None:  # type: ignore[no-untyped-def]
    for name in SIGNERS:
        assert (dev_pki / f"{name}.p12").is_file()
        assert (dev_pki / f"{name}.cert.pem").is_file()
    for name in ("root", "gov-ca", "public-ca", "tsa", "gov-ocsp", "public-ocsp"):
        assert (dev_pki / f"{name}.cert.pem").is_file()
    config = (dev_pki / "certomancer.yml").read_text(encoding="utf-8")
    assert f"http://127.0.0.1:{pki_services.port}" in config
    assert "time-stamping" in config and "ocsp" in config and "crl-repo" in config
    assert oct((dev_pki / "keys" / "root.key.pem").stat().st_mode & 0o777) == "0o600"


def test_certificates_name_the_people_and_chain_to_the_root(dev_pki: Path, pki_services) -> None:  # type: ignore[no-untyped-def]
    root = _cert(dev_pki / "root.cert.pem")
    assert root.subject.native["common_name"] == "Root CA (dev) standing in for the national root"
    chair = _cert(dev_pki / "nguyenthiquynhtrieu-token.cert.pem")
    assert chair.subject.native["common_name"] == "Nguyễn Thị Quỳnh Triều"
    assert chair.issuer == _cert(dev_pki / "gov-ca.cert.pem").subject
    assert (
        _cert(dev_pki / "nguyenthiquynhtrieu-mobile.cert.pem").issuer
        == _cert(dev_pki / "public-ca.cert.pem").subject
    )
    assert _cert(dev_pki / "gov-ca.cert.pem").issuer == root.subject
    seal = _cert(dev_pki / "agency-seal.cert.pem")
    assert seal.subject.native["organization_name"] == "UBND Phường Bến Nghé"
    assert chair.ocsp_urls == [f"http://127.0.0.1:{pki_services.port}/esign/ocsp/gov-ca"]
    assert chair.public_key.algorithm == "rsa"
    assert _cert(dev_pki / "tranthibinh-mobile.cert.pem").public_key.algorithm == "ec"


def test_people_json_describes_each_person(dev_pki: Path) -> None:
    people = {
        p["username"]: p for p in json.loads((dev_pki / "people.json").read_text("utf-8"))["people"]
    }
    assert people["nguyenthiquynhtrieu"]["full_name"] == "Nguyễn Thị Quỳnh Triều"
    assert people["nguyenthiquynhtrieu"]["role"] == "chair"
    assert people["tranthibinh"]["credentials"] == ["tranthibinh-token", "tranthibinh-mobile"]
    assert people["dangthiphuong"]["credentials"] == []
    assert set(people) == {
        "nguyenvana",
        "tranthibinh",
        "lequangcuong",
        "nguyenthiquynhtrieu",
        "hoangvanem",
        "vominhduc",
        "dangthiphuong",
        "admin",
    }


def test_pkcs12_passphrase_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from esign.errors import WrongPin
    from esign.signing.softkey import SoftkeyBackend

    monkeypatch.setenv("ESIGN_SOFTKEY_PASSPHRASE", "another-dev-secret")
    load_pki_module().make_dev_pki(tmp_path)
    assert os.environ["ESIGN_SOFTKEY_PASSPHRASE"] == "another-dev-secret"
    assert SoftkeyBackend(tmp_path, "another-dev-secret").certificate("hoangvanem-token")
    with pytest.raises(WrongPin):
        SoftkeyBackend(tmp_path, "esign-dev").certificate("hoangvanem-token")
