"""The document page's plugin upload form, through the Flask test client."""

from __future__ import annotations

from io import BytesIO

from flask.testing import FlaskClient

from esign.services import documents, signing
from esign.services.context import Context
from esign.services.demo import EXAMPLE_MEMO
from tests.services.test_chain import person, revisions_of, state_of
from tests.services.test_plugin_upload import plugin_sign
from tests.web.conftest import csrf_token, login


def test_an_adviser_uploads_the_pdf_signed_by_the_plugin_from_the_document_page(
    client: FlaskClient, sqlite_demo: Context
) -> None:
    ctx = sqlite_demo
    officer, adviser = person(ctx, "officer"), person(ctx, "adviser", 0)
    document_id = documents.compose_document(ctx, officer, EXAMPLE_MEMO)
    signing.request_signature(ctx, officer, document_id, "submit", advisers=[adviser.username])
    login(client, adviser.username)
    page = client.get(f"/documents/{document_id}").get_data(as_text=True)
    assert f"/documents/{document_id}/signed-upload" in page
    token = csrf_token(client, f"/documents/{document_id}")
    downloaded = client.get(f"/documents/{document_id}/pdf").data
    assert downloaded == revisions_of(ctx, document_id)[-1]

    # a signature in the wrong field: refused with the reason, nothing stored
    tampered = plugin_sign(ctx, adviser.username, downloaded, "adviser_2")
    refused = client.post(f"/documents/{document_id}/signed-upload", content_type="multipart/form-data",
                          data={"csrf_token": token, "action": "advise",
                                "file": (BytesIO(tampered), "signed.pdf")})
    assert refused.status_code == 422
    assert "adviser_2" in refused.get_data(as_text=True)
    assert len(revisions_of(ctx, document_id)) == 2

    signed = plugin_sign(ctx, adviser.username, downloaded, "adviser_1")
    response = client.post(f"/documents/{document_id}/signed-upload", content_type="multipart/form-data",
                           data={"csrf_token": token, "action": "advise", "comment": "Đồng ý",
                                 "file": (BytesIO(signed), "signed.pdf")})
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    assert revisions_of(ctx, document_id)[-1] == signed
    assert state_of(ctx, document_id) == "approve"
