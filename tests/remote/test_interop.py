"""Clients and servers we did not write: pyHanko's CSCSigner signs a PDF through
esign-remote, and the csc backend signs through certomancer's dummy CSC server."""

from __future__ import annotations

import asyncio
from io import BytesIO
from typing import Any

import aiohttp
import pytest
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import signers
from pyhanko.sign.signers.csc_signer import (
    CSCAuthorizationInfo,
    CSCAuthorizationManager,
    CSCServiceSessionInfo,
    CSCSigner,
    fetch_certs_in_csc_credential,
)

from esign.signing.backend import Signed, SignRequest
from esign.signing.csc import CscBackend
from tests.remote.conftest import PIN, DummyCsc, RemoteService, login, verify_value
from tests.tokens.conftest import signed_attributes


class PinAuthorizationManager(CSCAuthorizationManager):
    """Asks credentials/authorize for a SAD bound to the hashes, with the officer's PIN."""

    def __init__(self, session: aiohttp.ClientSession, *args: Any) -> None:
        super().__init__(*args)
        self.session = session

    async def authorize_signature(self, hash_b64s: list[str]) -> CSCAuthorizationInfo:
        body = self.format_csc_auth_request(
            pin=PIN, hash_b64s=hash_b64s, description="Tờ trình (pyHanko)"
        )
        url = self.csc_session_info.endpoint_url("credentials/authorize")
        async with self.session.post(
            url, json=body, headers=self.auth_headers, raise_for_status=True
        ) as response:
            return self.parse_csc_auth_response(await response.json())


def _blank_pdf() -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=14)
    pdf.cell(text="To trinh: ky qua dich vu ky so tu xa")
    return bytes(pdf.output())


async def _sign_with_pyhanko(service: RemoteService, credential: str, pdf: bytes) -> bytes:
    token = login(service.url)
    async with aiohttp.ClientSession() as session:
        info = CSCServiceSessionInfo(service.url, credential, oauth_token=token)
        credential_info = await fetch_certs_in_csc_credential(session, info)
        assert credential_info.hash_pinning_required
        signer = CSCSigner(session, PinAuthorizationManager(session, info, credential_info))
        out = await signers.async_sign_pdf(
            IncrementalPdfFileWriter(BytesIO(pdf)),
            signers.PdfSignatureMetadata(field_name="Signature1", md_algorithm="sha256"),
            signer=signer,
        )
    return out.getvalue()


@pytest.mark.parametrize("credential", ["nguyenvana-mobile", "tranthibinh-rsa"])
def test_pyhanko_csc_signer_signs_a_pdf_through_the_service(
    service: RemoteService, pdf_checks: Any, credential: str
) -> None:
    signed = asyncio.run(_sign_with_pyhanko(service, credential, _blank_pdf()))
    (status,) = pdf_checks.pyhanko(signed)
    assert status.intact and status.valid and status.trusted, status.pretty_print_details()
    assert status.md_algorithm == "sha256"


@pytest.mark.parametrize(
    ("credential", "mechanism"),
    [("esign/nguyenvana-mobile", "ecdsa"), ("esign/tranthibinh-token", "rsassa_pkcs1v15")],
)
def test_backend_signs_through_certomancers_dummy_csc_server(
    dummy_csc: DummyCsc, credential: str, mechanism: str
) -> None:
    backend = CscBackend(dummy_csc.url)  # the demo server has no client authentication
    assert credential in backend.credentials()
    bundle = backend.certificate(credential)
    request = SignRequest(
        credential=credential,
        tbs=signed_attributes(b"dummy"),
        mechanism=mechanism,
        label="Tờ trình",
    )
    answer = backend.sign(request)
    assert isinstance(answer, Signed)
    verify_value(bundle, request.tbs, answer.signature)


def test_batch_through_certomancers_dummy_csc_server(dummy_csc: DummyCsc) -> None:
    backend = CscBackend(dummy_csc.url)
    requests = [
        SignRequest(
            credential="esign/nguyenvana-mobile",
            tbs=signed_attributes(f"doc {i}".encode()),
            mechanism="ecdsa",
        )
        for i in range(3)
    ]
    values = backend.sign_many(requests)
    assert isinstance(values, list) and len(values) == 3
    bundle = backend.certificate("esign/nguyenvana-mobile")
    for request, value in zip(requests, values, strict=True):
        verify_value(bundle, request.tbs, value.signature)
