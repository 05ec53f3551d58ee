"""PostgreSQL unavailable for a moment: a clear 503, nothing half-done, and the next request works.

The app reaches PostgreSQL through a TCP proxy the test controls: ``down()``
drops every open connection and refuses new ones, ``up()`` accepts again. A
connection can also be terminated by the server (``pg_terminate_backend``)
while a signing request waits for the document lock, in the middle of its
transaction.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from flask.testing import FlaskClient
from sqlalchemy.engine import make_url

from esign.services.context import Context
from tests.conftest import _truncate_postgres, make_settings
from tests.web.conftest import csrf_token, login

from .conftest import OFFICER, Answer, Device, inspect, seed

pytestmark = pytest.mark.postgres

APP_NAME = "esign-fault-test"
MESSAGE_VI = "Cơ sở dữ liệu tạm thời không truy cập được; chưa có gì bị thay đổi. Hãy thử lại."
MESSAGE_EN = "The database is unavailable for a moment; nothing was changed. Try again."


class Proxy:
    """127.0.0.1:<port> → PostgreSQL, with a switch.

    A socket bound to the port and never listening holds it for the proxy's
    life: while the proxy is down, connections are refused, and no other test
    running in parallel can take the port meanwhile.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.conns: set[socket.socket] = set()
        self.lock = threading.Lock()
        self.listener: socket.socket | None = None
        self.holder = self._socket()
        self.holder.bind(("127.0.0.1", 0))
        self.port = self.holder.getsockname()[1]
        self.up()

    @staticmethod
    def _socket() -> socket.socket:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        return sock

    def up(self) -> None:
        listener = self._socket()
        try:
            listener.bind(("127.0.0.1", self.port))
        except OSError:
            listener.close()
            raise
        listener.listen(16)
        listener.settimeout(0.1)
        self.listener = listener
        self.accepting = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self.accepting.start()

    def down(self) -> None:
        """Refuse new connections and cut the open ones, as a database restart does.

        The listener stops listening before this returns: a socket closed while
        its accept thread still polls it would go on taking connections (and
        resetting them) for a moment, and share the port with the next listener.
        """
        listener, self.listener = self.listener, None
        assert listener is not None
        try:
            listener.shutdown(socket.SHUT_RDWR)  # Linux: leaves the LISTEN state, wakes accept()
        except OSError:
            pass
        self.accepting.join(timeout=5)
        listener.close()
        with self.lock:
            for conn in self.conns:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                conn.close()
            self.conns.clear()

    def close(self) -> None:
        if self.listener is not None:
            self.down()
        self.holder.close()

    def _accept(self, listener: socket.socket) -> None:
        while self.listener is listener:
            try:
                client, _addr = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            server = socket.create_connection(self.target)
            with self.lock:
                self.conns.update((client, server))
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, dev_pki: Path, postgres_url: str) -> Iterator[tuple]:  # type: ignore[type-arg]
    """The demo ward seeded directly with a draft per test; the app connected through the proxy."""
    from esign.web import create_app

    _truncate_postgres(postgres_url)
    base = tmp_path_factory.mktemp("db-unavailable")
    direct, document_ids = seed(make_settings(base, dev_pki, postgres_url), 3)
    url = make_url(postgres_url)
    proxy = Proxy((url.host or "127.0.0.1", url.port or 5432))
    proxied = url.set(port=proxy.port, query={"application_name": APP_NAME}).render_as_string(hide_password=False)
    app_ctx = Context.create(make_settings(base, dev_pki, proxied))
    try:
        yield proxy, direct, app_ctx, create_app(ctx=app_ctx), iter(document_ids)
    finally:
        proxy.close()
        app_ctx.close()
        direct.close()


@pytest.fixture
def stack(world) -> Iterator[tuple[Proxy, Context, Context, FlaskClient, int]]:  # type: ignore[no-untyped-def]
    """A draft of its own and the officer signed in, the database reachable again afterwards."""
    proxy, direct, app_ctx, app, document_ids = world
    client = app.test_client()
    login(client, OFFICER)
    try:
        yield proxy, direct, app_ctx, client, next(document_ids)
    finally:
        if proxy.listener is None:
            proxy.up()


def _create(client: FlaskClient, document_id: int) -> Answer:
    response = client.post(f"/api/documents/{document_id}/signature-requests",
                           json={"action": "submit", "device": "token", "advisers": ["tranthibinh"],
                                 "idempotency_key": f"k-{document_id}"},
                           headers={"X-CSRFToken": csrf_token(client, "/")})
    return Answer(response.status_code, response.get_json())


def _complete(client: FlaskClient, request_id: str, value: bytes, token: str) -> Answer:
    import base64

    response = client.post(f"/api/signature-requests/{request_id}/complete",
                           json={"signature": base64.b64encode(value).decode()},
                           headers={"X-CSRFToken": token, "Accept": "application/json"})
    return Answer(response.status_code, response.get_json())


def test_a_page_load_while_the_database_is_down_says_so_and_the_next_one_works(stack) -> None:  # type: ignore[no-untyped-def]
    proxy, _direct, _app_ctx, client, document_id = stack
    app = client.application
    assert client.get(f"/documents/{document_id}").status_code == 200

    proxy.down()
    started = time.monotonic()
    page = client.get(f"/documents/{document_id}")
    assert page.status_code == 503 and page.headers["Retry-After"] == "5"
    body = page.get_data(as_text=True)
    assert MESSAGE_VI in body and "Traceback" not in body and "psycopg" not in body
    as_json = client.get(f"/api/documents/{document_id}/verification", headers={"Accept": "application/json"})
    assert as_json.status_code == 503 and as_json.get_json()["error"] == "database_unavailable"
    assert as_json.get_json()["message"] == MESSAGE_VI
    assert time.monotonic() - started < 15  # refused at once, not a hang

    # a visitor who reads English gets the sentence in English
    visitor = app.test_client()
    visitor.post("/lang", data={"lang": "en", "csrf_token": csrf_token(visitor)})
    public = visitor.get("/v/some-code")
    assert public.status_code == 503 and MESSAGE_EN in public.get_data(as_text=True)

    proxy.up()
    # the pool's dead connections are replaced; the officer is still signed in
    assert client.get(f"/documents/{document_id}").status_code == 200
    assert client.get("/").status_code == 200 and visitor.get("/v/some-code").status_code == 404


def test_a_signature_completed_while_the_database_is_down_changes_nothing_and_completes_after(stack) -> None:  # type: ignore[no-untyped-def]
    proxy, direct, app_ctx, client, document_id = stack
    created = _create(client, document_id)
    assert created.status == 201, created
    value = Device(app_ctx).sign(created)
    token = csrf_token(client, "/")
    before = inspect(direct, document_id)

    proxy.down()
    refused = _complete(client, created.body["id"], value, token)
    assert refused.status == 503 and refused.body == {"error": "database_unavailable", "message": MESSAGE_VI}
    left = inspect(direct, document_id)
    assert left.revisions == before.revisions == 1 and left.state == "draft"
    assert list(left.requests.values()) == ["pending"]

    proxy.up()
    done = _complete(client, created.body["id"], value, token)
    assert done.status == 200 and done.body["status"] == "completed" and done.body["revision_index"] == 1
    after = inspect(direct, document_id)
    assert after.revisions == 2 and after.state == "advise"


def test_a_connection_terminated_inside_the_signing_transaction_rolls_it_back(stack, postgres_url: str) -> None:  # type: ignore[no-untyped-def]
    _proxy, direct, app_ctx, client, document_id = stack
    created = _create(client, document_id)
    value = Device(app_ctx).sign(created)
    token = csrf_token(client, "/")
    answers: list[Answer] = []

    with psycopg.connect(postgres_url) as holder, psycopg.connect(postgres_url, autocommit=True) as admin:
        # hold the document lock, so that the completion waits inside its transaction
        holder.execute("UPDATE documents SET lock_version = lock_version WHERE id = %s", (document_id,))
        worker = threading.Thread(target=lambda: answers.append(_complete(client, created.body["id"], value, token)))
        worker.start()
        deadline = time.monotonic() + 30
        waiting: list[int] = []
        while not waiting and time.monotonic() < deadline:
            waiting = [r[0] for r in admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s AND wait_event_type = 'Lock'",
                (APP_NAME,))]
            time.sleep(0.05)
        assert waiting, "the completion never waited for the document lock"
        admin.execute("SELECT pg_terminate_backend(%s)", (waiting[0],))
        worker.join(timeout=30)
        holder.rollback()
    assert answers and answers[0].status == 503, answers
    assert answers[0].body["error"] == "database_unavailable"
    left = inspect(direct, document_id)
    assert left.revisions == 1 and list(left.requests.values()) == ["pending"] and left.state == "draft"

    # the app's other pooled connections may be dead too: terminate them all, the next request works
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
                      (APP_NAME,))
    done = _complete(client, created.body["id"], value, token)
    assert done.status == 200 and done.body["status"] == "completed", done
    assert inspect(direct, document_id).revisions == 2
