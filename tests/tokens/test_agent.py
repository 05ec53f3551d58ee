"""esign-agent as a real process on a free port, talking to a real SoftHSM2 token."""

from __future__ import annotations

import base64
import hashlib
import io
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.x509 import load_pem_x509_certificate

from esign.agent.server import MAX_BODY
from tests.tokens.conftest import (
    ORIGIN,
    PIN,
    AgentProcess,
    signed_attributes,
    start_agent,
    stop_agent,
)

ALLOWED = {"Origin": ORIGIN}


def _sign_body(tbs: bytes, credential: str = "nguyenvana-token", **extra: Any) -> dict[str, Any]:
    return {
        "credential": credential,
        "tbs_b64": base64.b64encode(tbs).decode(),
        "md_algorithm": "sha256",
        "mechanism": "rsassa_pkcs1v15",
        **extra,
    }


def _registered_fingerprint(dev_pki: Path, credential: str) -> str:
    pem = (dev_pki / f"{credential}.cert.pem").read_bytes()
    return hashlib.sha256(
        load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    ).hexdigest()


def test_status_says_the_token_is_present_and_the_pin_verified(agent: AgentProcess) -> None:
    status, _, body = agent.request("GET", "/status")
    assert status == 200
    assert body["agent"] == "esign-agent"
    assert body["token"] == "nguyenvana"
    assert body["token_present"] is True
    assert body["pin"] == "ok"


def test_certificates_lists_the_officers_certificates_with_fingerprints(
    agent: AgentProcess, dev_pki: Path
) -> None:
    status, headers, body = agent.request("GET", "/certificates", headers=ALLOWED)
    assert status == 200
    assert headers["access-control-allow-origin"] == ORIGIN
    by_label = {c["label"]: c for c in body["certificates"]}
    assert set(by_label) == {"nguyenvana-token", "nguyenvana-mobile"}  # no CA certificates
    token_cert = by_label["nguyenvana-token"]
    assert token_cert["sha256"] == _registered_fingerprint(dev_pki, "nguyenvana-token")
    assert "Nguyễn Văn An" in token_cert["subject"]
    assert token_cert["certificate_pem"].startswith("-----BEGIN CERTIFICATE-----")


def test_sign_returns_a_signature_that_verifies_with_the_certificate(
    agent: AgentProcess, dev_pki: Path
) -> None:
    tbs = signed_attributes()
    fingerprint = _registered_fingerprint(dev_pki, "nguyenvana-token")
    status, headers, body = agent.request(
        "POST", "/sign", _sign_body(tbs, certificate_sha256=fingerprint), headers=ALLOWED
    )
    assert status == 200, body
    assert headers["access-control-allow-origin"] == ORIGIN
    cert = load_pem_x509_certificate(body["certificate_pem"].encode())
    cert.public_key().verify(  # type: ignore[call-arg, union-attr]
        base64.b64decode(body["signature_b64"]), tbs, padding.PKCS1v15(), hashes.SHA256()
    )
    assert body["sha256"] == fingerprint


def test_sign_with_ecdsa(agent: AgentProcess) -> None:
    tbs = signed_attributes(b"ecdsa")
    status, _, body = agent.request(
        "POST", "/sign", _sign_body(tbs, "nguyenvana-mobile", mechanism="ecdsa"), headers=ALLOWED
    )
    assert status == 200, body
    cert = load_pem_x509_certificate(body["certificate_pem"].encode())
    cert.public_key().verify(
        base64.b64decode(body["signature_b64"]), tbs, ec.ECDSA(hashes.SHA256())
    )  # type: ignore[call-arg, union-attr]


def test_a_token_signature_through_the_agent_finishes_a_pdf_revision(
    agent: AgentProcess, dev_pki: Path
) -> None:
    """prepare on the server, sign through the agent, finish: pyHanko finds it intact and trusted."""
    from asn1crypto import pem, x509
    from fpdf import FPDF
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign import fields
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    from esign.signing import deferred
    from esign.signing.pkcs11 import Pkcs11Backend

    page = FPDF()
    page.add_page()
    buffer = io.BytesIO(bytes(page.output()))
    writer = IncrementalPdfFileWriter(buffer)
    fields.append_signature_field(writer, fields.SigFieldSpec("drafter", box=(60, 60, 260, 140)))
    writer.write_in_place()
    first = buffer.getvalue()

    bundle = Pkcs11Backend("/usr/lib/softhsm/libsofthsm2.so", "nguyenvana", None).certificate(
        "nguyenvana-token"
    )
    stamp = deferred.StampText(
        authority="",
        title="Chuyên viên",
        name="Nguyễn Văn An",
        signed_at=datetime(2026, 3, 2, 9, 0, tzinfo=timezone(timedelta(hours=7))),
    )
    prepared = deferred.prepare_signature(
        first, deferred.SignatureSpec(field="drafter", stamp=stamp, certify=True), bundle
    )
    status, _, body = agent.request(
        "POST",
        "/sign",
        _sign_body(prepared.tbs, md_algorithm=prepared.md_algorithm, mechanism=prepared.mechanism),
        headers=ALLOWED,
    )
    assert status == 200, body
    signed = deferred.finish_signature(prepared, base64.b64decode(body["signature_b64"]), bundle)

    root = x509.Certificate.load(pem.unarmor((dev_pki / "root.cert.pem").read_bytes())[2])
    embedded = PdfFileReader(io.BytesIO(signed)).embedded_signatures[0]
    result = validate_pdf_signature(
        embedded,
        ValidationContext(
            trust_roots=[root],
            allow_fetching=False,
            revocation_mode="soft-fail",
            moment=datetime(2026, 3, 2, 3, 0, tzinfo=UTC),
        ),
    )
    assert result.intact and result.valid and result.trusted


def test_an_origin_not_configured_gets_no_cors_grant_and_no_signature(agent: AgentProcess) -> None:
    evil = {"Origin": "https://evil.example"}
    status, headers, _ = agent.request(
        "OPTIONS",
        "/sign",
        headers={
            **evil,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Private-Network": "true",
        },
    )
    assert status == 403
    assert "access-control-allow-origin" not in headers
    assert "access-control-allow-private-network" not in headers
    status, headers, body = agent.request(
        "POST", "/sign", _sign_body(signed_attributes()), headers=evil
    )
    assert status == 403 and body["error"] == "origin_refused"
    assert "access-control-allow-origin" not in headers
    status, headers, _ = agent.request("GET", "/certificates", headers=evil)
    assert status == 403 and "access-control-allow-origin" not in headers


def test_the_configured_origin_passes_the_private_network_preflight(agent: AgentProcess) -> None:
    status, headers, _ = agent.request(
        "OPTIONS",
        "/sign",
        headers={
            **ALLOWED,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
            "Access-Control-Request-Private-Network": "true",
        },
    )
    assert status == 204
    assert headers["access-control-allow-origin"] == ORIGIN
    assert headers["access-control-allow-private-network"] == "true"
    assert "POST" in headers["access-control-allow-methods"]


def test_sign_needs_an_origin_and_the_agents_own_host(agent: AgentProcess) -> None:
    status, _, body = agent.request("POST", "/sign", _sign_body(signed_attributes()))
    assert status == 403 and body["error"] == "origin_refused"
    # DNS rebinding: a foreign name that resolves to 127.0.0.1
    status, _, body = agent.request(
        "POST",
        "/sign",
        _sign_body(signed_attributes()),
        headers={**ALLOWED, "Host": "evil.example"},
    )
    assert status == 421 and body["error"] == "host_refused"


def test_an_oversized_body_gets_413(agent: AgentProcess) -> None:
    status, _, body = agent.request(
        "POST",
        "/sign",
        b"{" + b" " * (MAX_BODY * 4) + b"}",
        headers={**ALLOWED, "Content-Type": "application/json"},
    )
    assert status == 413 and body["error"] == "too_large"


def test_the_agent_signs_only_cms_signed_attributes(agent: AgentProcess) -> None:
    # a bare digest or any other data must not be signable through the agent
    status, _, body = agent.request(
        "POST", "/sign", _sign_body(hashlib.sha256(b"x").digest()), headers=ALLOWED
    )
    assert status == 400 and body["error"] == "bad_request"


def test_a_certificate_that_is_not_the_registered_one_is_refused(
    agent: AgentProcess, dev_pki: Path
) -> None:
    someone_else = _registered_fingerprint(dev_pki, "tranthibinh-token")
    status, _, body = agent.request(
        "POST",
        "/sign",
        _sign_body(signed_attributes(), certificate_sha256=someone_else),
        headers=ALLOWED,
    )
    assert status == 403 and body["error"] == "certificate_refused"
    assert "not the one registered for you" in body["message"]


def test_an_unknown_credential_is_named(agent: AgentProcess) -> None:
    status, _, body = agent.request(
        "POST", "/sign", _sign_body(signed_attributes(), "tranthibinh-token"), headers=ALLOWED
    )
    assert status == 404 and body["error"] == "unknown_credential"


def test_a_wrong_pin_answers_a_clear_error_and_is_not_tried_again(
    tokens: Any, tmp_path: Path
) -> None:
    wrong = start_agent(tokens, "tranthibinh", "999999", tmp_path)
    try:
        _, _, status_body = wrong.request("GET", "/status")
        assert status_body["pin"] == "wrong"
        status, headers, body = wrong.request(
            "POST", "/sign", _sign_body(signed_attributes(), "tranthibinh-token"), headers=ALLOWED
        )
        assert status == 401 and body["error"] == "wrong_pin"
        assert "Restart esign-agent" in body["message"]
        assert headers["access-control-allow-origin"] == ORIGIN  # the page can read the reason
        assert "999999" not in body["message"]
    finally:
        stop_agent(wrong)
    assert "999999" not in (tmp_path / f"agent-tranthibinh-{wrong.port}.log").read_text()


def test_a_token_that_is_not_plugged_in_answers_token_unavailable(
    tokens: Any, tmp_path: Path
) -> None:
    absent = start_agent(tokens, "unplugged", PIN, tmp_path)
    try:
        _, _, status_body = absent.request("GET", "/status")
        assert status_body["token_present"] is False
        status, _, body = absent.request(
            "POST", "/sign", _sign_body(signed_attributes()), headers=ALLOWED
        )
        assert status == 503 and body["error"] == "token_unavailable"
        assert "not plugged in" in body["message"]
    finally:
        stop_agent(absent)


@pytest.mark.parametrize("origin", ["*", "https://esign.example/path", "esign.example"])
def test_the_agent_refuses_origins_that_are_not_origins(origin: str) -> None:
    from esign.agent import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--origin", origin])
