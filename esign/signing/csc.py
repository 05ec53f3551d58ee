"""Remote and mobile certificates over the Cloud Signature Consortium API (v1).

:class:`CscBackend` is a CSC client behind the ``sign → Pending → collect``
interface. It calls ``credentials/info`` for certificates, then
``credentials/authorize`` with the SHA-256 of the tbs (the SAD is bound to
these hashes: SCAL 2) and ``signatures/signHash``.

Two ways to authorize:

- with the PIN the officer typed (``SignRequest.pin``): the provider answers
  with a SAD at once, and :meth:`CscBackend.sign` returns :class:`Signed`;
  providers that need no PIN (certomancer's demo server) do the same;
- without a PIN, against esign's own service (``esign-remote``): it answers
  ``202`` with an authorization id and a short code, the officer confirms on a
  phone page, and :meth:`CscBackend.collect` polls
  ``credentials/authorizeStatus`` (an esign extension of the CSC API) until
  the SAD is there, then signs.

A reference (``Pending.ref``) is ``csc1:<authorization id>`` for a whole
authorization and ``csc1:<authorization id>#<i>`` for its i-th hash; it holds
everything needed to collect, so the esign server may restart in between.
One authorization may cover several hashes (the chair's batch approval):
:meth:`CscBackend.sign_many` and :meth:`CscBackend.collect_many`.

The calling application authenticates with ``auth/login`` (HTTP Basic with
client id and secret) and then a bearer token, when the provider lists
``basic`` in ``info``'s ``authType``; a provider without authentication (the
demo server) is called without it. PINs and SADs are never logged.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from asn1crypto import algos, core, x509

from esign.errors import (
    BackendError,
    BackendExpired,
    Declined,
    PinLocked,
    TokenUnavailable,
    UnknownCredential,
    WrongPin,
)
from esign.signing.backend import CertificateBundle, Pending, Signed, SignRequest

log = logging.getLogger(__name__)

REF_PREFIX = "csc1:"
DIGESTS = ("sha256", "sha384", "sha512")


@dataclass(frozen=True)
class _Credential:
    bundle: CertificateBundle
    key_kind: str  # 'rsa' or 'ec'
    algorithms: frozenset[str]


def _mechanism_kind(mechanism: str) -> str:
    name = mechanism.lower()
    if name in ("rsassa_pkcs1v15", "rsa") or name.endswith("_rsa"):
        return "rsa"
    if name == "ecdsa" or name.endswith("_ecdsa"):
        return "ec"
    raise BackendError(
        "esign cannot ask a CSC service for %(mechanism)s signatures.", mechanism=mechanism
    )


def _ecdsa_der(value: bytes) -> bytes:
    """ECDSA values as DER; a provider that answers raw r||s is converted."""
    try:
        parsed = algos.DSASignature.load(value)
        parsed.native  # noqa: B018 -- parse fully
        if parsed.dump() == value:
            return value
    except (ValueError, TypeError):
        pass
    if len(value) % 2:
        raise BackendError("The remote signing service returned an ECDSA value esign cannot read.")
    half = len(value) // 2
    return algos.DSASignature(
        {
            "r": core.Integer(int.from_bytes(value[:half], "big")),
            "s": core.Integer(int.from_bytes(value[half:], "big")),
        }
    ).dump()


def parse_ref(ref: str) -> tuple[str, int | None]:
    """(authorization id, index of one hash or None) of a reference."""
    if not ref.startswith(REF_PREFIX):
        raise BackendError("This signature request does not belong to the remote signing service.")
    body = ref[len(REF_PREFIX) :]
    auth_id, sep, index = body.partition("#")
    if not auth_id or (sep and not index.isdigit()):
        raise BackendError("This signature request does not belong to the remote signing service.")
    return auth_id, int(index) if sep else None


class CscBackend:
    """Signs through a CSC API v1 service (credential = CSC credentialID)."""

    def __init__(
        self,
        base_url: str,
        client_id: str | None = None,
        client_secret: str | None = None,
        *,
        name: str = "csc",
        api_version: str = "v1",
        timeout: float = 20.0,
        provider: str = "",
    ) -> None:
        """
        :param base_url: the part before ``/csc/v1/`` (``https://ky.example.vn``)
        :param client_id: esign's client id at the service (``auth/login``); None: no login
        :param client_secret: its secret (from an environment variable; never logged)
        :param provider: a name for the service in officers' messages (default: its ``info`` name)
        """
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self._secret = client_secret
        self.name = name
        self.api_version = api_version
        self.timeout = timeout
        self._provider = provider
        self._lock = threading.Lock()
        self._token: tuple[str, float] | None = None
        self._info: dict[str, Any] | None = None
        self._credentials: dict[str, _Credential] = {}

    def __repr__(self) -> str:
        return f"CscBackend({self.base_url!r}, client_id={self.client_id!r})"

    # -- HTTP

    def _url(self, endpoint: str) -> str:
        return f"{self.base_url}/csc/{self.api_version}/{endpoint}"

    def _post(
        self, endpoint: str, body: dict[str, Any] | None, headers: dict[str, str]
    ) -> tuple[int, Any]:
        data = json.dumps(body or {}).encode("utf-8")
        sent = {"Content-Type": "application/json", "Accept": "application/json", **headers}
        req = urllib.request.Request(self._url(endpoint), data=data, headers=sent, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        except (urllib.error.URLError, OSError) as e:
            raise TokenUnavailable(
                "The remote signing service at %(url)s cannot be reached. Try again in a few "
                "minutes; if it persists, tell the administrator.",
                url=self.base_url,
            ) from e
        try:
            payload = json.loads(raw) if raw else {}
        except ValueError:
            payload = {}
        return status, payload

    def info(self) -> dict[str, Any]:
        """The service's ``info`` (cached)."""
        if self._info is None:
            status, payload = self._post("info", {}, {})
            if status != 200 or not isinstance(payload, dict):
                raise self._error(status, payload, "info")
            self._info = payload
        return self._info

    @property
    def provider(self) -> str:
        if self._provider:
            return self._provider
        try:
            return str(self.info().get("name") or self.base_url)
        except BackendError:
            return self.base_url

    def _uses_login(self) -> bool:
        return self.client_id is not None and "basic" in (self.info().get("authType") or [])

    def _auth_headers(self, fresh: bool = False) -> dict[str, str]:
        if not self._uses_login():
            return {}
        with self._lock:
            if fresh or self._token is None or self._token[1] <= time.monotonic():
                basic = base64.b64encode(f"{self.client_id}:{self._secret or ''}".encode()).decode()
                status, payload = self._post("auth/login", {}, {"Authorization": f"Basic {basic}"})
                if status != 200 or "access_token" not in payload:
                    raise BackendError(
                        "The remote signing service %(provider)s refused esign's client "
                        "credentials (client %(client)s). The administrator must check them.",
                        provider=self._provider or self.base_url,
                        client=self.client_id,
                    )
                ttl = int(payload.get("expires_in", 3600))
                self._token = (str(payload["access_token"]), time.monotonic() + max(ttl - 30, 1))
            return {"Authorization": f"Bearer {self._token[0]}"}

    def _call(self, endpoint: str, body: dict[str, Any]) -> tuple[int, Any]:
        status, payload = self._post(endpoint, body, self._auth_headers())
        if status == 401 and self._uses_login():  # the token expired or was revoked
            status, payload = self._post(endpoint, body, self._auth_headers(fresh=True))
        if status >= 300:
            raise self._error(status, payload, endpoint)
        return status, payload

    def _error(self, status: int, payload: Any, endpoint: str) -> BackendError:
        error = payload.get("error", "") if isinstance(payload, dict) else ""
        description = payload.get("error_description", "") if isinstance(payload, dict) else ""
        provider = self._provider or self.base_url
        if error == "invalid_pin":
            return WrongPin(
                "The PIN is wrong. Type it again carefully: the key locks after a few wrong tries."
            )
        if error == "invalid_otp":
            return WrongPin("The one-time code is wrong or was already used. Type the current one.")
        if error == "pin_locked":
            return PinLocked(
                "The PIN of this remote key is locked after too many wrong tries. Wait a "
                "quarter of an hour, or ask the signing service's administrator."
            )
        if status == 404 and endpoint.startswith("credentials/"):
            return UnknownCredential(
                "The remote signing service %(provider)s has no such credential or request.",
                provider=provider,
            )
        if status == 401:
            return BackendError(
                "The remote signing service %(provider)s refused esign's client credentials. "
                "The administrator must check them.",
                provider=provider,
            )
        if status >= 500:
            return TokenUnavailable(
                "The remote signing service %(provider)s failed (HTTP %(status)s). Try again in "
                "a few minutes.",
                provider=provider,
                status=status,
            )
        reason = str(description or error or f"HTTP {status}")[:200]
        return BackendError(
            "The remote signing service %(provider)s refused the request: %(reason)s.",
            provider=provider,
            reason=reason,
        )

    # -- credentials

    def credentials(self, user_id: str | None = None) -> list[str]:
        """``credentials/list``: the credential ids (of one user when given)."""
        body: dict[str, Any] = {} if user_id is None else {"userID": user_id}
        _, payload = self._call("credentials/list", body)
        return [str(c) for c in payload.get("credentialIDs", [])]

    def _credential(self, credential: str) -> _Credential:
        cached = self._credentials.get(credential)
        if cached is not None:
            return cached
        _, payload = self._call(
            "credentials/info",
            {"credentialID": credential, "certificates": "chain", "certInfo": False},
        )
        try:
            certs = [
                x509.Certificate.load(base64.b64decode(c)) for c in payload["cert"]["certificates"]
            ]
            for cert in certs:
                cert.native  # noqa: B018 -- parse fully now
            names = frozenset(
                algos.SignedDigestAlgorithmId(oid).native for oid in payload["key"]["algo"]
            )
        except (KeyError, TypeError, ValueError) as e:
            raise BackendError(
                "The remote signing service %(provider)s sent an unreadable certificate for "
                "%(credential)s.",
                provider=self._provider or self.base_url,
                credential=credential,
            ) from e
        if not certs:
            raise UnknownCredential(
                "The remote credential %(credential)s has no certificate.", credential=credential
            )
        kind = "ec" if certs[0].public_key.algorithm == "ec" else "rsa"
        found = _Credential(CertificateBundle(certs[0], tuple(certs[1:])), kind, names)
        self._credentials[credential] = found
        return found

    def certificate(self, credential: str) -> CertificateBundle:
        return self._credential(credential).bundle

    def _sign_algo(self, credential: _Credential, md: str) -> str:
        wanted = f"{md}_{'ecdsa' if credential.key_kind == 'ec' else 'rsa'}"
        if credential.algorithms and wanted not in credential.algorithms:
            raise BackendError(
                "The remote key cannot sign with %(algorithm)s (it offers %(offered)s).",
                algorithm=wanted,
                offered=", ".join(sorted(credential.algorithms)),
            )
        return algos.SignedDigestAlgorithmId(wanted).dotted

    # -- signing

    def sign(self, request: SignRequest) -> Signed | Pending:
        answer = self.sign_many([request])
        return answer[0] if isinstance(answer, list) else answer

    def sign_many(self, requests: Sequence[SignRequest]) -> list[Signed] | Pending:
        """One authorization (one confirmation) for every request; same credential and PIN.

        Returns the values in order, or one :class:`Pending` whose ref covers them all
        (collect it with :meth:`collect_many`, or hash i alone with :meth:`item_ref`).
        """
        if not requests:
            return []
        first = requests[0]
        if any(r.credential != first.credential for r in requests):
            raise BackendError(
                "One confirmation covers documents signed with one certificate only."
            )
        mds = {r.md_algorithm.lower().replace("-", "") for r in requests}
        if len(mds) != 1 or next(iter(mds)) not in DIGESTS:
            raise BackendError(
                "esign signs with SHA-256, SHA-384 or SHA-512, one for the whole batch."
            )
        md = next(iter(mds))
        credential = self._credential(first.credential)
        for r in requests:
            if _mechanism_kind(r.mechanism) != credential.key_kind:
                raise BackendError(
                    "The remote key %(credential)s cannot make %(mechanism)s signatures.",
                    credential=first.credential,
                    mechanism=r.mechanism,
                )
        hashes = [
            base64.b64encode(hashlib.new(md, r.tbs).digest()).decode("ascii") for r in requests
        ]
        titles = [r.label for r in requests]
        body: dict[str, Any] = {
            "credentialID": first.credential,
            "numSignatures": len(hashes),
            "hash": hashes,
            "hashAlgo": algos.DigestAlgorithmId(md).dotted,
            "description": "; ".join(t for t in titles if t)[:500] or "esign",
            "documentTitles": titles,
        }
        if first.pin:
            body["PIN"] = first.pin
        status, payload = self._call("credentials/authorize", body)
        if status == 202 or payload.get("status") == "pending":
            auth_id = str(payload.get("authorizationID", ""))
            if not auth_id or "#" in auth_id:
                raise BackendError("The remote signing service answered without a request id.")
            log.info(
                "csc %s: %d hash(es) wait for confirmation on the phone",
                first.credential,
                len(hashes),
            )
            return self._pending(REF_PREFIX + auth_id, payload)
        sad = payload.get("SAD")
        if not sad:
            raise BackendError("The remote signing service answered without authorization data.")
        values = self._sign_hash(first.credential, str(sad), hashes, md)
        return [Signed(v) for v in values]

    def _pending(self, ref: str, payload: dict[str, Any]) -> Pending:
        code = str(payload.get("code", "")).strip()
        expires = payload.get("expiresIn")
        expires_at = (
            datetime.now(UTC) + timedelta(seconds=int(expires))
            if isinstance(expires, int)
            else None
        )
        message = f"Xác nhận trên điện thoại (mã {code})" if code else "Xác nhận trên điện thoại"
        return Pending(ref=ref, expires_at=expires_at, message=message)

    def _sign_hash(self, credential_id: str, sad: str, hashes: list[str], md: str) -> list[bytes]:
        credential = self._credential(credential_id)
        body = {
            "credentialID": credential_id,
            "SAD": sad,
            "hash": hashes,
            "hashAlgo": algos.DigestAlgorithmId(md).dotted,
            "signAlgo": self._sign_algo(credential, md),
        }
        _, payload = self._call("signatures/signHash", body)
        try:
            values = [base64.b64decode(v, validate=True) for v in payload["signatures"]]
        except (KeyError, TypeError, ValueError) as e:
            raise BackendError("The remote signing service returned unreadable signatures.") from e
        if len(values) != len(hashes):
            raise BackendError(
                "The remote signing service returned %(got)s signatures for %(asked)s hashes.",
                got=len(values),
                asked=len(hashes),
            )
        if credential.key_kind == "ec":
            values = [_ecdsa_der(v) for v in values]
        return values

    @staticmethod
    def item_ref(ref: str, index: int) -> str:
        """The reference of the ``index``-th hash of a batch reference."""
        auth_id, _ = parse_ref(ref)
        return f"{REF_PREFIX}{auth_id}#{index}"

    def _status(self, auth_id: str) -> dict[str, Any]:
        _, payload = self._call("credentials/authorizeStatus", {"authorizationID": auth_id})
        return payload if isinstance(payload, dict) else {}

    def _outcome(self, ref: str, wanted: list[int] | None) -> list[bytes] | Pending:
        auth_id, _ = parse_ref(ref)
        state = self._status(auth_id)
        status = state.get("status")
        if status == "pending":
            return self._pending(ref, state)
        if status == "declined":
            raise Declined("The officer declined the signature on the phone.")
        if status == "expired":
            raise BackendExpired(
                "The confirmation on the phone expired before the signature was made. Start "
                "the signature again."
            )
        if status == "failed":
            raise WrongPin(
                "The PIN was typed wrong too many times on the phone. Start the signature again."
            )
        if status == "cancelled":
            raise Declined("The signature request was cancelled.")
        if status != "confirmed" or not state.get("SAD"):
            raise BackendError(
                "The remote signing service reported an unknown state: %(state)s.",
                state=str(status)[:40],
            )
        hashes = [str(h) for h in state.get("hash", [])]
        md = algos.DigestAlgorithmId(str(state.get("hashAlgo", "sha256"))).native
        if wanted is not None:
            if any(i >= len(hashes) for i in wanted):
                raise BackendError(
                    "This signature request does not belong to the remote signing service."
                )
            hashes = [hashes[i] for i in wanted]
        return self._sign_hash(str(state["credentialID"]), str(state["SAD"]), hashes, md)

    def collect(self, ref: str) -> Signed | Pending:
        _, index = parse_ref(ref)
        outcome = self._outcome(ref, [index] if index is not None else None)
        if isinstance(outcome, Pending):
            return outcome
        if len(outcome) != 1:
            raise BackendError("This reference covers several documents: collect them together.")
        return Signed(outcome[0])

    def collect_many(self, ref: str) -> list[Signed] | Pending:
        """Every value of a batch reference from :meth:`sign_many`, in order."""
        outcome = self._outcome(ref, None)
        if isinstance(outcome, Pending):
            return outcome
        return [Signed(v) for v in outcome]

    def confirmation(self, ref: str) -> dict[str, Any]:
        """Where the phone confirmation of a reference stands, without collecting anything.

        ``{"status", "code", "expires_at" (while pending), "url" (while pending)}``;
        status is pending | confirmed | declined | expired | failed | cancelled.
        """
        auth_id, _ = parse_ref(ref)
        state = self._status(auth_id)
        expires = state.get("expiresIn")
        return {
            "status": str(state.get("status", "")),
            "code": str(state.get("code", "")).strip(),
            "expires_at": (
                datetime.now(UTC) + timedelta(seconds=int(expires))
                if isinstance(expires, int) and state.get("status") == "pending"
                else None
            ),
            "url": str(state.get("confirmURL") or "") or None,
        }

    def confirmation_url(self, ref: str) -> str | None:
        """The phone page of a pending reference (for a QR code on the desktop), if any."""
        auth_id, _ = parse_ref(ref)
        url = self._status(auth_id).get("confirmURL")
        return str(url) if url else None

    def cancel(self, ref: str) -> None:
        """Withdraw a pending confirmation (esign's extension ``credentials/authorizeCancel``)."""
        auth_id, _ = parse_ref(ref)
        self._call("credentials/authorizeCancel", {"authorizationID": auth_id})
