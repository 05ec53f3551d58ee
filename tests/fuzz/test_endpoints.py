"""Property-based fuzzing of the endpoints that take untrusted bytes: the document upload,
the verification page and API, the completion of a signature request and the plugin upload.

For every input: never a 500, an answer within BOUND_S, a rejection is a 4xx with
a clear message in the user's language (Vietnamese by default), and a rejected
request stores nothing (no document, no revision); ``fsck`` passes at the end.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
from io import BytesIO
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from esign.services import signing
from esign.services.integrity import check_store
from esign.signing.backend import SignRequest

from .conftest import EXECUTIONS, MINIMAL_PDF, World
from .mutations import HUGE, damaged, pdf_like

#: no answer may take longer (the verification worker's own limit is lower)
BOUND_S = 30.0
ALERT = re.compile(r'<p class="alert" role="alert">(.*?)</p>', re.DOTALL)
#: a Vietnamese sentence has letters with diacritics
VIETNAMESE = re.compile(r"[\u00C0-\u1EF9]")


def timed(call: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    response = call()
    return response, time.perf_counter() - started


def assert_clear_rejection(response: Any) -> None:
    assert 400 <= response.status_code < 500, response.status_code
    if response.is_json:
        body = response.get_json()
        assert body["error"] and body["message"], body
        message = body["message"]
    else:
        found = ALERT.search(response.get_data(as_text=True)) or re.search(
            r'class="error[^"]*"[^>]*>(.*?)<', response.get_data(as_text=True), re.DOTALL)
        assert found, response.get_data(as_text=True)[:3000]
        message = found.group(1)
    assert message.strip() and VIETNAMESE.search(message), message


def check_fsck(world: World) -> None:
    report = check_store(world.ctx, verify_signatures=True)
    assert report.ok, report.problems


# --- the upload of a new document ------------------------------------------------------------


def test_upload_of_damaged_pdfs_is_refused_cleanly(world: World) -> None:
    officer = world.client("nguyenvana")
    seeds = (world.plain, MINIMAL_PDF, world.r0)

    @given(data=pdf_like(seeds))
    @example(data=world.r1)  # a PDF esign itself prepared and signed: was a 500 (naming conflict)
    @example(data=world.r0)
    @example(data=b"")
    @example(data=MINIMAL_PDF[: len(MINIMAL_PDF) // 2])
    @example(data=MINIMAL_PDF.replace(b"/Count 1", b"/Count " + HUGE[0]))
    @example(data=MINIMAL_PDF.replace(b"[3 0 R]", b"[" * 5000 + b"3 0 R" + b"]" * 5000))
    def upload(data: bytes) -> None:
        EXECUTIONS["upload"] += 1
        before = world.documents()
        response, seconds = timed(lambda: officer.post("/documents/upload", data={
            "csrf_token": officer.csrf, "idempotency_key": secrets.token_urlsafe(12), "doc_type": "TTr",
            "title": "Tờ trình thử", "file": (BytesIO(data), "thu.pdf")}, content_type="multipart/form-data"))
        assert seconds < BOUND_S
        assert response.status_code != 500
        if response.status_code == 302:
            assert world.documents() == before + 1
        else:
            assert_clear_rejection(response)
            assert world.documents() == before

    upload()
    check_fsck(world)


# --- verification ----------------------------------------------------------------------------


def test_verification_page_and_api_never_fail(world: World) -> None:
    auditor = world.client("dangthiphuong")
    seeds = (world.r1, world.r0)

    @given(data=pdf_like(seeds), api=st.booleans())
    @example(data=world.r1 + b"\n99 0 obj\n<</Type/Sig>>\nendobj\n", api=False)
    @example(data=b"%PDF-1.7\n" + b"[" * 20000, api=True)
    @example(data=b"", api=True)
    def verify(data: bytes, api: bool) -> None:
        EXECUTIONS["verify-api" if api else "verify-page"] += 1
        before = world.revisions()
        if api:
            response, seconds = timed(lambda: auditor.post("/api/verify", data=data, headers={
                "Content-Type": "application/pdf", "X-CSRFToken": auditor.csrf, "Accept": "application/json"}))
        else:
            response, seconds = timed(lambda: auditor.post("/verify", data={
                "csrf_token": auditor.csrf, "file": (BytesIO(data), "ban-sao.pdf")},
                content_type="multipart/form-data"))
        assert seconds < BOUND_S
        assert response.status_code != 500
        if response.status_code == 200:
            if api:
                assert response.get_json()["verdict"]
            else:
                assert 'class="verdict' in response.get_data(as_text=True)
        else:
            assert_clear_rejection(response)
        assert world.revisions() == before

    verify()


# --- completing a signature request ----------------------------------------------------------


def _json_values() -> st.SearchStrategy[Any]:
    return st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
                        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                                     max_size=4), max_leaves=10)


def test_completion_with_bad_values_is_refused_and_stores_nothing(world: World) -> None:
    adviser = world.user("lequangcuong")
    cert = world.certificate("lequangcuong", "token")
    with world.ctx.db.session() as session:
        from esign.models import Certificate

        session.get(Certificate, cert.id).backend = "agent"  # the token is on the desktop
    state: dict[str, Any] = {}

    def fresh_request() -> None:
        outcome = signing.request_signature(world.ctx, adviser, world.document_id, "advise", comment="Đồng ý",
                                            certificate_id=cert.id)
        assert outcome.status == "pending" and outcome.tbs
        value = world.ctx.backends["softkey"].sign(SignRequest(
            credential=cert.credential, tbs=outcome.tbs, md_algorithm=outcome.md_algorithm,
            mechanism=outcome.mechanism, label="fuzz")).signature
        state.update(id=outcome.request_id, value=value)

    fresh_request()
    client = world.client("lequangcuong")

    def near_miss(value: bytes, at: int, blob: bytes, kind: int) -> bytes:
        i = at % len(value)
        return (value[:i], value + blob, value[:i] + blob + value[i + len(blob):], blob + value)[kind % 4]

    bodies = st.one_of(
        _json_values().map(json.dumps),  # any JSON: wrong types, missing fields
        st.fixed_dictionaries({"signature": _json_values()}).map(json.dumps),
        st.binary(max_size=700).map(lambda b: json.dumps({"signature": base64.b64encode(b).decode()})),
        st.tuples(st.integers(0, 1 << 16), st.binary(min_size=1, max_size=32), st.integers(0, 3)).map(
            lambda t: json.dumps({"signature": base64.b64encode(near_miss(state["value"], *t)).decode()})),
        st.text(max_size=80).map(lambda s: json.dumps({"signature": s})),  # not base64
        st.binary(max_size=200).map(lambda b: b.decode("latin-1")),  # not JSON at all
    )

    @given(body=bodies)
    @example(body=json.dumps({"signature": ""}))
    @example(body=json.dumps({"signature": "====" * 10}))
    @example(body=json.dumps({"signature": base64.b64encode(b"\x00" * 256).decode()}))
    @example(body="[]")
    @example(body="null")
    def complete(body: str) -> None:
        EXECUTIONS["complete"] += 1
        if body == json.dumps({"signature": base64.b64encode(state["value"]).decode()}):
            return  # the one right answer is sent at the end
        before = world.revisions()
        response, seconds = timed(lambda: client.post(f"/api/signature-requests/{state['id']}/complete",
                                                      data=body, headers={"Content-Type": "application/json",
                                                                          "X-CSRFToken": client.csrf}))
        assert seconds < BOUND_S
        assert response.status_code != 500
        assert_clear_rejection(response)
        assert world.revisions() == before
        if signing.get_request(world.ctx, adviser, state["id"]).status != "pending":
            fresh_request()  # a refusal that ends the request: carry on with a new one

    complete()
    before = world.revisions()
    right = json.dumps({"signature": base64.b64encode(state["value"]).decode()})
    for _ in range(2):  # the right value, twice: one revision
        response = client.post(f"/api/signature-requests/{state['id']}/complete", data=right,
                               headers={"Content-Type": "application/json", "X-CSRFToken": client.csrf})
        assert response.status_code == 200, response.get_data(as_text=True)
    assert world.revisions() == before + 1
    check_fsck(world)


# --- the plugin's signed upload ------------------------------------------------------------


def test_plugin_uploads_of_damaged_pdfs_are_refused_and_store_nothing(world: World) -> None:
    adviser = world.client("tranthibinh")
    seeds = (world.r1, world.r0)

    @given(data=st.one_of(damaged(seeds), st.binary(max_size=1024).map(lambda b: world.r1 + b)))
    @example(data=world.r1)  # the head itself: nothing signed
    @example(data=world.r0)  # an older revision
    @example(data=world.r1 + world.r1)
    def plugin_upload(data: bytes) -> None:
        EXECUTIONS["plugin-upload"] += 1
        before = world.revisions()
        response, seconds = timed(lambda: adviser.post(f"/documents/{world.document_id}/signed-upload", data={
            "csrf_token": adviser.csrf, "action": "advise", "idempotency_key": secrets.token_urlsafe(12),
            "comment": "Đồng ý", "file": (BytesIO(data), "da-ky.pdf")}, content_type="multipart/form-data"))
        assert seconds < BOUND_S
        assert response.status_code != 500
        assert_clear_rejection(response)
        assert world.revisions() == before

    plugin_upload()
    check_fsck(world)
