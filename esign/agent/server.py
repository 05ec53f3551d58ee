"""The HTTP side of esign-agent: three endpoints on 127.0.0.1, answering only esign's origins.

``GET /status``
    ``{"agent": "esign-agent", "version", "token", "token_present", "pin"}``
    where ``pin`` is ``"unverified" | "ok" | "wrong" | "locked"``.
``GET /certificates``
    ``{"token", "certificates": [{"label", "subject", "issuer", "not_after",
    "certificate_pem", "sha256"}]}``: the signers' certificates on the token
    (``sha256``: fingerprint of the DER, lowercase hex without separators).
``POST /sign`` (``Content-Type: application/json``)
    ``{"credential", "tbs_b64", "md_algorithm", "mechanism", "certificate_sha256"?}``
    -> ``{"signature_b64", "certificate_pem", "sha256"}``. ``tbs`` must be the
    DER of CMS signed attributes (content type and message digest present):
    the agent signs nothing else. With ``certificate_sha256`` the agent refuses
    to sign unless the credential's certificate has that fingerprint.

Errors: ``{"error": code, "message": sentence}`` with the codes of
:mod:`esign.errors` (``token_unavailable``, ``wrong_pin``, ``pin_locked``,
``unknown_credential``, ``certificate_refused``, ``backend``) and the agent's
own ``origin_refused`` (403), ``host_refused`` (421), ``too_large`` (413),
``bad_request`` (400), ``not_found`` (404).

Who may talk to it: a browser page whose ``Origin`` is one of the configured
esign origins (CORS and Chromium's Private Network Access preflight are
answered for those only). ``POST /sign`` always needs such an Origin;
``GET`` requests without any Origin (curl, a local check) are answered, with
no CORS grant. The ``Host`` header must name 127.0.0.1 or localhost at the
agent's port, which defeats DNS rebinding.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import threading
from collections.abc import Iterable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from asn1crypto import cms, pem

from esign import __version__
from esign.errors import CertificateRefused, EsignError, PinLocked, WrongPin
from esign.signing.backend import SignRequest
from esign.signing.pkcs11 import Pkcs11Backend

log = logging.getLogger("esign.agent")

#: the largest request body accepted: tbs (signed attributes) are a few hundred
#: bytes, a few KiB with revocation data; base64 and JSON add a third
MAX_BODY = 8 * 1024
DEFAULT_PORT = 9796


class AgentRefusal(EsignError):
    """A request the agent will not serve (wrong origin, too large, malformed)."""

    def __init__(self, status: int, code: str, message: str, **params: object) -> None:
        super().__init__(message, **params)
        self.status = status
        self.code = code


class Agent:
    """What the agent does, apart from HTTP: holds the PIN, lists and signs."""

    def __init__(self, backend: Pkcs11Backend, origins: Iterable[str], pin: str | None) -> None:
        self.backend = backend
        self.origins = frozenset(origins)
        self._pin = pin
        #: unverified | ok | wrong | locked
        self.pin_state = "unverified" if pin else "missing"
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never the PIN
        return f"Agent({self.backend!r}, origins={sorted(self.origins)!r})"

    def verify_pin(self) -> None:
        """Log in once; remembers the outcome. Raises the backend's error."""
        with self._lock:
            self._call(self.backend.verify_pin, self._pin)

    def _call(self, fn: Any, *args: Any) -> Any:
        try:
            result = fn(*args)
        except WrongPin:
            if self._pin:
                # never try a wrong PIN again: each try uses up one of the token's few
                self._pin = None
                self.pin_state = "wrong"
            raise
        except PinLocked:
            self._pin = None
            self.pin_state = "locked"
            raise
        if self._pin:
            self.pin_state = "ok"
        return result

    def status(self) -> dict[str, Any]:
        try:
            present = self.backend.token_present()
        except EsignError:
            present = False
        return {
            "agent": "esign-agent",
            "version": __version__,
            "token": self.backend.token_label,
            "token_present": present,
            "pin": self.pin_state,
        }

    def certificates(self) -> dict[str, Any]:
        return {
            "token": self.backend.token_label,
            "certificates": [
                {
                    "label": c.label,
                    "subject": c.subject,
                    "issuer": c.cert.issuer.human_friendly,
                    "not_after": c.cert.not_valid_after.isoformat(),
                    "certificate_pem": c.pem,
                    "sha256": c.sha256,
                }
                for c in self.backend.signer_certificates()
            ],
        }

    def sign(self, body: dict[str, Any]) -> dict[str, Any]:
        credential = body.get("credential")
        encoded = body.get("tbs_b64")
        md = body.get("md_algorithm", "sha256")
        mechanism = body.get("mechanism", "rsassa_pkcs1v15")
        wanted = body.get("certificate_sha256")
        if not isinstance(credential, str) or not credential or not isinstance(encoded, str):
            raise AgentRefusal(
                400, "bad_request", "Send JSON {credential, tbs_b64, md_algorithm, mechanism}."
            )
        if not isinstance(md, str) or not isinstance(mechanism, str):
            raise AgentRefusal(400, "bad_request", "md_algorithm and mechanism must be strings.")
        try:
            tbs = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as e:
            raise AgentRefusal(400, "bad_request", "tbs_b64 is not valid base64.") from e
        _check_signed_attributes(tbs)

        with self._lock:
            if self.pin_state == "wrong":
                raise WrongPin(
                    "The PIN typed into esign-agent for token %(token)s was wrong. Restart "
                    "esign-agent and type the PIN again (the token locks after a few wrong tries).",
                    token=self.backend.token_label,
                )
            if self.pin_state == "locked":
                raise PinLocked(
                    "The PIN of token %(token)s is locked. The token's administrator can unlock "
                    "it with the SO PIN.",
                    token=self.backend.token_label,
                )
            bundle = self.backend.certificate(credential)
            fingerprint = _sha256(bundle.cert.dump())
            if isinstance(wanted, str) and wanted and _normalise(wanted) != fingerprint:
                raise CertificateRefused(
                    "The certificate %(credential)s on this token is not the one registered for "
                    "you in esign.",
                    credential=credential,
                )
            signed = self._call(
                self.backend.sign,
                SignRequest(
                    credential=credential,
                    tbs=tbs,
                    md_algorithm=md,
                    mechanism=mechanism,
                    pin=self._pin,
                ),
            )
        return {
            "signature_b64": base64.b64encode(signed.signature).decode("ascii"),
            "certificate_pem": _pem(bundle.cert.dump()),
            "sha256": fingerprint,
        }


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _normalise(fingerprint: str) -> str:
    return fingerprint.replace(":", "").replace(" ", "").lower()


def _pem(der: bytes) -> str:
    return pem.armor("CERTIFICATE", der).decode("ascii")


def _check_signed_attributes(tbs: bytes) -> None:
    """Refuse anything but the DER of CMS signed attributes."""
    try:
        attrs = cms.CMSAttributes.load(tbs, strict=True)
        types = {a["type"].native for a in attrs}
    except (ValueError, TypeError) as e:
        raise AgentRefusal(
            400, "bad_request", "The data to sign is not a CMS signed-attributes set."
        ) from e
    if not {"content_type", "message_digest"} <= types:
        raise AgentRefusal(
            400,
            "bad_request",
            "The data to sign lacks the content type or message digest attribute.",
        )


# --- HTTP ----------------------------------------------------------------------------


class AgentServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, agent: Agent, port: int) -> None:
        self.agent = agent
        super().__init__(("127.0.0.1", port), AgentHandler)
        bound = self.server_address[1]
        self.allowed_hosts = {f"127.0.0.1:{bound}", f"localhost:{bound}"}


class AgentHandler(BaseHTTPRequestHandler):
    server: AgentServer
    server_version = f"esign-agent/{__version__}"
    protocol_version = "HTTP/1.1"

    # -- plumbing

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        # method, path and status only: bodies (tbs, signatures) are never logged
        log.info("%s %s", self.address_string(), format % args)

    def _origin(self) -> str | None:
        return self.headers.get("Origin")

    def _allowed_origin(self) -> str | None:
        origin = self._origin()
        return origin if origin in self.server.agent.origins else None

    def _send(
        self, status: int, payload: dict[str, Any], extra: dict[str, str] | None = None
    ) -> None:
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Vary", "Origin")
        allowed = self._allowed_origin()
        if allowed:
            self.send_header("Access-Control-Allow-Origin", allowed)
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _error(self, e: EsignError) -> None:
        self._send(e.status, {"error": e.code, "message": str(e)})

    def _guard(self, needs_origin: bool) -> bool:
        """Host and Origin checks; answers and returns False when the request is refused."""
        if self.headers.get("Host", "") not in self.server.allowed_hosts:
            self.close_connection = True
            self._error(AgentRefusal(421, "host_refused", "esign-agent answers only on 127.0.0.1."))
            return False
        origin = self._origin()
        if origin is not None and self._allowed_origin() is None:
            self._error(
                AgentRefusal(
                    403,
                    "origin_refused",
                    "esign-agent is not configured for %(origin)s (start it with --origin).",
                    origin=origin,
                )
            )
            return False
        if needs_origin and origin is None:
            self._error(
                AgentRefusal(403, "origin_refused", "esign-agent signs only for an esign page.")
            )
            return False
        return True

    def _drain(self, length: int) -> None:
        self.connection.settimeout(2)
        try:
            while length > 0:
                chunk = self.rfile.read(min(length, 65536))
                if not chunk:
                    break
                length -= len(chunk)
        except OSError:
            pass

    # -- verbs

    def do_OPTIONS(self) -> None:
        """CORS and Private Network Access preflight, for the configured origins only."""
        allowed = self._allowed_origin()
        method = self.headers.get("Access-Control-Request-Method", "")
        if (
            self.headers.get("Host", "") not in self.server.allowed_hosts
            or allowed is None
            or method not in ("GET", "POST")
            or self.path.split("?")[0] not in ("/status", "/certificates", "/sign")
        ):
            self.send_response(HTTPStatus.FORBIDDEN)
            self.send_header("Content-Length", "0")
            self.send_header("Vary", "Origin")
            self.end_headers()
            return
        self.send_response(HTTPStatus.NO_CONTENT)
        self.send_header("Access-Control-Allow-Origin", allowed)
        self.send_header("Access-Control-Allow-Methods", "GET, POST")
        self.send_header("Access-Control-Allow-Headers", "Content-Type")
        self.send_header("Access-Control-Max-Age", "600")
        if self.headers.get("Access-Control-Request-Private-Network", "").lower() == "true":
            self.send_header("Access-Control-Allow-Private-Network", "true")
        self.send_header("Vary", "Origin")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        if not self._guard(needs_origin=False):
            return
        path = self.path.split("?")[0]
        agent = self.server.agent
        try:
            if path == "/status":
                self._send(200, agent.status())
            elif path == "/certificates":
                self._send(200, agent.certificates())
            else:
                self._error(
                    AgentRefusal(404, "not_found", "esign-agent has no page %(path)s.", path=path)
                )
        except EsignError as e:
            self._error(e)

    def do_POST(self) -> None:
        # read nothing before the checks: an oversized or foreign request costs nothing
        self.close_connection = True
        if not self._guard(needs_origin=True):
            return
        if self.path.split("?")[0] != "/sign":
            self._error(
                AgentRefusal(404, "not_found", "esign-agent has no page %(path)s.", path=self.path)
            )
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._error(AgentRefusal(411, "bad_request", "Send the request with a Content-Length."))
            return
        if length > MAX_BODY or length < 0:
            # swallow a bounded part of the body so that the client reads the answer
            # instead of a reset connection; never the whole of an arbitrary upload
            self._drain(min(max(length, 0), 16 * MAX_BODY))
            self._error(
                AgentRefusal(
                    413,
                    "too_large",
                    "The request is larger than data to be signed can be (%(limit)s bytes).",
                    limit=MAX_BODY,
                )
            )
            return
        content_type = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            self._error(AgentRefusal(415, "bad_request", "Send the request as application/json."))
            return
        try:
            body = json.loads(self.rfile.read(length))
        except (ValueError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict):
            self._error(AgentRefusal(400, "bad_request", "The request is not a JSON object."))
            return
        try:
            self._send(200, self.server.agent.sign(body))
        except EsignError as e:
            log.warning("sign refused: %s (%s)", e.code, e)
            self._error(e)
