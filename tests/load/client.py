"""A small HTTP client for the load test: one signed-in person, cookies, the CSRF token, forms and JSON.

Standard library only (http.client); every request opens its own connection so
that one person's requests can run in several threads at once, as two browser
tabs do. Every answer is recorded with its status and duration.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlencode, urlsplit

from esign.services.demo import DEMO_PASSWORD

CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')
TIMEOUT_S = 120


@dataclass(frozen=True)
class Answer:
    who: str
    what: str
    method: str
    path: str
    status: int
    seconds: float
    key: str = ""
    document_id: int | None = None
    location: str = ""
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 400


@dataclass
class Recorder:
    answers: list[Answer] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, answer: Answer) -> None:
        with self.lock:
            self.answers.append(answer)


class Person:
    def __init__(self, base: str, username: str, recorder: Recorder) -> None:
        parts = urlsplit(base)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.username = username
        self.recorder = recorder
        self.cookies: dict[str, str] = {}
        self.csrf = ""
        self._lock = threading.Lock()

    # --- transport ---------------------------------------------------------------------------

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
                *, what: str = "page", key: str = "", document_id: int | None = None) -> Answer:
        headers = dict(headers or {})
        with self._lock:
            if self.cookies:
                headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        started = time.perf_counter()
        conn = http.client.HTTPConnection(self.host, self.port, timeout=TIMEOUT_S)
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            for header in response.headers.get_all("Set-Cookie") or []:
                jar = SimpleCookie()
                jar.load(header)
                with self._lock:
                    for name, morsel in jar.items():
                        self.cookies[name] = morsel.value
            answer = Answer(self.username, what, method, path, response.status, time.perf_counter() - started,
                            key, document_id, response.headers.get("Location", ""), data)
        finally:
            conn.close()
        self.recorder.add(answer)
        return answer

    def get(self, path: str, *, what: str = "page", document_id: int | None = None) -> Answer:
        return self.request("GET", path, what=what, document_id=document_id)

    def post_form(self, path: str, fields: dict[str, Any], files: dict[str, tuple[str, bytes]] | None = None,
                  **meta: Any) -> Answer:
        fields = {"csrf_token": self.csrf, **fields}
        if not files:
            pairs = [(k, v) for k, vs in fields.items() for v in (vs if isinstance(vs, list) else [vs])]
            return self.request("POST", path, urlencode(pairs).encode(),
                                {"Content-Type": "application/x-www-form-urlencoded"}, **meta)
        boundary = uuid.uuid4().hex
        out = bytearray()
        for k, vs in fields.items():
            for v in vs if isinstance(vs, list) else [vs]:
                out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n").encode()
        for k, (name, data) in files.items():
            out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"; filename=\"{name}\"\r\n"
                    "Content-Type: application/pdf\r\n\r\n").encode() + data + b"\r\n"
        out += f"--{boundary}--\r\n".encode()
        return self.request("POST", path, bytes(out), {"Content-Type": f"multipart/form-data; boundary={boundary}"},
                            **meta)

    def post_json(self, path: str, payload: Any, **meta: Any) -> Answer:
        return self.request("POST", path, json.dumps(payload).encode(),
                            {"Content-Type": "application/json", "Accept": "application/json",
                             "X-CSRFToken": self.csrf}, **meta)

    # --- signing in ----------------------------------------------------------------------------

    def log_in(self) -> None:
        page = self.get("/login")
        found = CSRF_META.search(page.body.decode())
        assert found, "no CSRF token on /login"
        self.csrf = found.group(1)
        answer = self.post_form("/login", {"username": self.username, "password": DEMO_PASSWORD}, what="login")
        assert answer.status == 302, (self.username, answer.status, answer.body[:500])
        home = self.get("/")
        found = CSRF_META.search(home.body.decode())
        assert home.status == 200 and found, (self.username, home.status)
        self.csrf = found.group(1)
