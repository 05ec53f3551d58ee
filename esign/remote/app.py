"""The remote signing service: the CSC API over HSM keys, and the phone confirmation page.

CSC API v1 (1.0.4.0) under ``/csc/v1/``, with a documented extension for
asynchronous confirmation on the officer's phone. See ``esign/remote/README.md``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import wraps
from typing import Any
from zoneinfo import ZoneInfo

import pyotp
from asn1crypto import algos
from flask import Blueprint, Flask, current_app, g, jsonify, render_template, request
from flask_wtf.csrf import CSRFError, generate_csrf, validate_csrf
from werkzeug.exceptions import HTTPException
from wtforms import ValidationError

from esign.errors import (
    BackendError,
    EsignError,
    PinLocked,
    TokenUnavailable,
    UnknownCredential,
    WrongPin,
)
from esign.remote.config import RemoteConfig
from esign.remote.hsm import DIGEST_BY_SIZE, HsmKey
from esign.remote.store import Authorization, Store

log = logging.getLogger(__name__)

API_VERSION = "1.0.4.0"
#: signature algorithms by key type, as credentials/info advertises them
ALGORITHMS = {
    "rsa": ("sha256_rsa", "sha384_rsa", "sha512_rsa", "rsassa_pkcs1v15"),
    "ec": ("sha256_ecdsa", "sha384_ecdsa", "sha512_ecdsa", "ecdsa"),
}
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I
LOCAL_TZ = ZoneInfo("Asia/Ho_Chi_Minh")


class ApiError(Exception):
    """A CSC error response: ``{"error": ..., "error_description": ...}``."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise ApiError(400, "invalid_request", f"Invalid parameter {what}")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "invalid_request", f"Invalid parameter {what}") from None


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class RemoteService:
    """What the routes call: every decision and every audit record is made here."""

    def __init__(self, config: RemoteConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self.store = Store(config.database)
        self.keys = {
            cred_id: HsmKey(config.module, c.token, c.key)
            for cred_id, c in config.credentials.items()
        }

    # -- client applications

    def login(self, client_id: str, secret: str) -> tuple[str, int]:
        expected = self.config.clients.get(client_id)
        if expected is None or not hmac.compare_digest(
            expected.encode("utf-8"), secret.encode("utf-8")
        ):
            self.store.record("login.refused", client_id=client_id[:80])
            raise ApiError(401, "authentication_error", "Invalid client credentials")
        token = secrets.token_urlsafe(32)
        ttl = self.config.token_ttl_seconds
        self.store.add_token(_sha256(token), client_id, self.clock() + ttl)
        self.store.record("login", client_id=client_id)
        return token, ttl

    def client_for(self, token: str) -> str | None:
        return self.store.token_client(_sha256(token), self.clock())

    def revoke(self, token: str) -> None:
        self.store.revoke_token(_sha256(token))

    # -- credentials

    def key(self, credential_id: Any) -> HsmKey:
        if not isinstance(credential_id, str) or credential_id not in self.keys:
            raise ApiError(404, "invalid_request", "Invalid parameter credentialID")
        return self.keys[credential_id]

    def credential_ids(self, owner: str | None = None) -> list[str]:
        return sorted(
            c for c, cfg in self.config.credentials.items() if owner is None or cfg.owner == owner
        )

    def credential_info(
        self, credential_id: str, certificates: str, cert_info: bool
    ) -> dict[str, Any]:
        key = self.key(credential_id)
        bundle = key.certificate()
        public = bundle.cert.public_key
        kind = "ec" if public.algorithm == "ec" else "rsa"
        key_info: dict[str, Any] = {
            "status": "enabled",
            "algo": [algos.SignedDigestAlgorithmId(a).dotted for a in ALGORITHMS[kind]],
            "len": public.bit_size,
        }
        if kind == "ec":
            params = public["algorithm"]["parameters"]
            if params.name == "named":
                key_info["curve"] = params.chosen.dotted
        owner = self.config.credentials[credential_id].owner
        info: dict[str, Any] = {
            "description": f"{bundle.cert.subject.native.get('common_name', owner)}",
            "key": key_info,
            "authMode": "explicit",
            "PIN": {
                "presence": "true",
                "format": "N",
                "label": "PIN",
                "description": "PIN of the officer's signing key",
            },
            "OTP": {
                "presence": "true" if owner in self.config.totp_secrets else "false",
                "type": "offline",
                "ID": "totp",
                "provider": "TOTP (RFC 6238)",
                "format": "N",
                "label": "TOTP",
                "description": "6-digit code of the officer's authenticator app",
            },
            "SCAL": "2",
            "multisign": self.config.multisign,
            "lang": "vi-VN",
        }
        if certificates != "none":
            certs = [bundle.cert] + (list(bundle.chain) if certificates == "chain" else [])
            info["cert"] = {"status": "valid", "certificates": [_b64(c.dump()) for c in certs]}
            if cert_info:
                cert = bundle.cert
                info["cert"].update(
                    {
                        "issuerDN": cert.issuer.human_friendly,
                        "serialNumber": format(cert.serial_number, "x"),
                        "subjectDN": cert.subject.human_friendly,
                        "validFrom": cert.not_valid_before.strftime("%Y%m%d%H%M%SZ"),
                        "validTo": cert.not_valid_after.strftime("%Y%m%d%H%M%SZ"),
                    }
                )
        return info

    # -- authorization

    def _sad(self, auth_id: str) -> str:
        mac = hmac.new(
            self.config.secret_key.encode("utf-8"), f"sad|{auth_id}".encode(), hashlib.sha256
        ).digest()
        return f"{auth_id}.{base64.urlsafe_b64encode(mac).decode('ascii').rstrip('=')}"

    def _auth_from_sad(self, sad: Any) -> str:
        if not isinstance(sad, str) or "." not in sad:
            raise ApiError(400, "invalid_request", "Invalid parameter SAD")
        auth_id = sad.split(".", 1)[0]
        if not hmac.compare_digest(self._sad(auth_id), sad):
            raise ApiError(400, "invalid_request", "Invalid parameter SAD")
        return auth_id

    def _check_otp(self, owner: str, otp: Any, db: Any) -> None:
        secret = self.config.totp_secrets.get(owner)
        if secret is None:
            return
        if not isinstance(otp, str) or not otp.strip().isdigit():
            raise ApiError(400, "invalid_otp", "The OTP is missing or invalid")
        totp = pyotp.TOTP(secret)
        now = self.clock()
        for offset in (0, -1, 1):  # one time step of clock drift either way
            at = now + offset * totp.interval
            if hmac.compare_digest(totp.at(at), otp.strip()):
                if self.store.totp_step_unused(
                    db, owner, totp.timecode(datetime.fromtimestamp(at, UTC))
                ):
                    return
                raise ApiError(400, "invalid_otp", "This OTP was already used")
        raise ApiError(400, "invalid_otp", "The OTP is missing or invalid")

    def authorize(self, client_id: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """credentials/authorize: a SAD at once with PIN, else a pending phone confirmation."""
        credential_id = body.get("credentialID")
        key = self.key(credential_id)
        owner = self.config.credentials[credential_id].owner
        try:
            num = int(body.get("numSignatures"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ApiError(400, "invalid_request", "Invalid parameter numSignatures") from None
        if not 1 <= num <= self.config.multisign:
            raise ApiError(400, "invalid_request", "Invalid parameter numSignatures")
        hashes_b64 = body.get("hash")
        if not isinstance(hashes_b64, list) or not hashes_b64:
            raise ApiError(
                400,
                "invalid_request",
                "Missing parameter hash (SCAL 2: hashes are bound to the SAD)",
            )
        digests = [_unb64(h, "hash") for h in hashes_b64]
        if len(digests) != num:
            raise ApiError(
                400, "invalid_request", "numSignatures does not match the number of hashes"
            )
        if len(set(digests)) != len(digests):
            raise ApiError(400, "invalid_request", "The same hash is listed twice")
        sizes = {len(d) for d in digests}
        if len(sizes) != 1 or next(iter(sizes)) not in DIGEST_BY_SIZE:
            raise ApiError(400, "invalid_request", "Invalid parameter hash")
        md = DIGEST_BY_SIZE[next(iter(sizes))]
        if "hashAlgo" in body:
            try:
                named = algos.DigestAlgorithmId(body["hashAlgo"]).native
            except (ValueError, TypeError):
                raise ApiError(400, "invalid_request", "Invalid parameter hashAlgo") from None
            if named != md:
                raise ApiError(400, "invalid_request", "hashAlgo does not match the hashes")
        description = str(body.get("description") or "")[:500]
        titles = body.get("documentTitles")
        if titles is None:
            titles = [description] * num
        if not isinstance(titles, list) or len(titles) != num:
            raise ApiError(400, "invalid_request", "Invalid parameter documentTitles")
        titles = [str(t)[:300] for t in titles]
        hashes = [_b64(d) for d in digests]
        now = self.clock()
        auth_id = secrets.token_urlsafe(16)
        row = {
            "id": auth_id,
            "client_id": client_id,
            "credential_id": credential_id,
            "owner": owner,
            "hash_algo": md,
            "hashes": hashes,
            "titles": titles,
            "description": description,
            "code": "".join(secrets.choice(CODE_ALPHABET) for _ in range(4)),
            "created_at": now,
        }
        pin = body.get("PIN")
        if pin is None:
            if body.get("OTP") is not None:
                raise ApiError(400, "invalid_request", "An OTP needs the PIN too")
            ttl = self.config.confirm_ttl_seconds
            with self.store.write() as db:
                self.store.add_authorization(
                    db, **row, mode="phone", status="pending", expires_at=now + ttl
                )
                self.store.audit(
                    db,
                    "authorize.pending",
                    client_id=client_id,
                    credential_id=credential_id,
                    authorization_id=auth_id,
                    hashes=hashes,
                    titles=titles,
                )
            return 202, {
                "authorizationID": auth_id,
                "status": "pending",
                "code": row["code"],
                "confirmURL": f"{self.config.public_url.rstrip('/')}/confirm/{auth_id}",
                "expiresIn": ttl,
            }
        if not isinstance(pin, str) or not pin:
            raise ApiError(400, "invalid_pin", "The PIN is invalid")
        with self.store.write() as db:
            self._check_otp(owner, body.get("OTP"), db)
        values = self._sign(key, digests, md, pin, client_id, credential_id, auth_id)
        with self.store.write() as db:
            self.store.add_authorization(
                db,
                **row,
                mode="pin",
                status="confirmed",
                expires_at=now,
                decided_at=now,
                sad_expires_at=now + self.config.sad_ttl_seconds,
                signatures=[_b64(v) for v in values],
                used=[False] * num,
            )
            self.store.audit(
                db,
                "authorize.pin",
                client_id=client_id,
                credential_id=credential_id,
                authorization_id=auth_id,
                hashes=hashes,
                titles=titles,
            )
        return 200, {"SAD": self._sad(auth_id), "expiresIn": self.config.sad_ttl_seconds}

    def _sign(
        self,
        key: HsmKey,
        digests: list[bytes],
        md: str,
        pin: str,
        client_id: str,
        credential_id: str,
        auth_id: str,
    ) -> list[bytes]:
        """The HSM signs with the officer's PIN; consecutive wrong PINs lock the credential.

        SoftHSM (and some HSM partitions) never lock a PIN, so the service counts
        wrong PINs itself, across authorizations and both ways of authorizing.
        """
        if self.store.locked_until(credential_id) > self.clock():
            raise PinLocked("Too many wrong PINs: this key is locked for a while.")
        try:
            values = key.sign_digests(digests, md, pin)
        except WrongPin:
            with self.store.write() as db:
                failures = self.store.pin_failed(db, credential_id)
                self.store.audit(
                    db,
                    "pin.wrong",
                    client_id=client_id,
                    credential_id=credential_id,
                    authorization_id=auth_id,
                    consecutive=failures,
                )
                if failures >= self.config.max_pin_failures:
                    until = self.clock() + self.config.pin_lock_seconds
                    self.store.lock_pin(db, credential_id, until)
                    self.store.audit(
                        db,
                        "pin.locked",
                        client_id=client_id,
                        credential_id=credential_id,
                        authorization_id=auth_id,
                        seconds=self.config.pin_lock_seconds,
                    )
            raise
        self.store.pin_succeeded(credential_id)
        return values

    def current(self, db: Any, auth_id: str) -> Authorization | None:
        """The authorization, marked expired first when its deadline has passed."""
        auth = self.store.authorization(db, auth_id)
        if auth is None:
            return None
        now = self.clock()
        if auth.status == "pending" and now >= auth.expires_at:
            self.store.update_authorization(db, auth_id, status="expired", decided_at=now)
            self.store.audit(
                db,
                "authorize.expired",
                client_id=auth.client_id,
                credential_id=auth.credential_id,
                authorization_id=auth_id,
            )
            auth = self.store.authorization(db, auth_id)
        return auth

    def status(self, client_id: str, auth_id: Any) -> dict[str, Any]:
        """The extension credentials/authorizeStatus."""
        if not isinstance(auth_id, str):
            raise ApiError(400, "invalid_request", "Invalid parameter authorizationID")
        with self.store.write() as db:
            auth = self.current(db, auth_id)
        if auth is None or auth.client_id != client_id:
            raise ApiError(404, "invalid_request", "Invalid parameter authorizationID")
        out: dict[str, Any] = {
            "authorizationID": auth.id,
            "status": auth.status,
            "credentialID": auth.credential_id,
            "numSignatures": len(auth.hashes),
            "hash": list(auth.hashes),
            "hashAlgo": algos.DigestAlgorithmId(auth.hash_algo).dotted,
            "code": auth.code,
        }
        now = self.clock()
        if auth.status == "pending":
            out["expiresIn"] = max(0, int(auth.expires_at - now))
            out["confirmURL"] = f"{self.config.public_url.rstrip('/')}/confirm/{auth.id}"
        elif auth.status == "confirmed" and auth.sad_expires_at and now < auth.sad_expires_at:
            out["SAD"] = self._sad(auth.id)
            out["expiresIn"] = int(auth.sad_expires_at - now)
        elif auth.status == "confirmed":
            out["status"] = "expired"  # the SAD's lifetime has passed
        return out

    def cancel(self, client_id: str, auth_id: Any) -> None:
        """The extension credentials/authorizeCancel: a pending authorization ends."""
        with self.store.write() as db:
            auth = self.current(db, auth_id) if isinstance(auth_id, str) else None
            if auth is None or auth.client_id != client_id:
                raise ApiError(404, "invalid_request", "Invalid parameter authorizationID")
            if auth.status == "pending":
                self.store.update_authorization(
                    db, auth.id, status="cancelled", decided_at=self.clock()
                )
                self.store.audit(
                    db,
                    "authorize.cancelled",
                    client_id=client_id,
                    credential_id=auth.credential_id,
                    authorization_id=auth.id,
                )

    # -- signing

    def sign_hash(self, client_id: str, body: dict[str, Any]) -> list[str]:
        credential_id = body.get("credentialID")
        self.key(credential_id)
        auth_id = self._auth_from_sad(body.get("SAD"))
        requested = body.get("hash")
        if not isinstance(requested, list) or not requested:
            raise ApiError(400, "invalid_request", "Invalid parameter hash")
        requested = [_b64(_unb64(h, "hash")) for h in requested]
        try:
            sign_algo = algos.SignedDigestAlgorithm({"algorithm": body.get("signAlgo")})
            sign_algo["algorithm"].native  # noqa: B018 -- parse now
        except (ValueError, TypeError):
            raise ApiError(400, "invalid_request", "Invalid parameter signAlgo") from None
        if body.get("signAlgoParams") is not None:
            raise ApiError(
                400,
                "invalid_request",
                "Invalid parameter signAlgoParams (RSASSA-PSS is not offered)",
            )

        def refuse(reason: str, db: Any) -> ApiError:
            self.store.audit(
                db,
                "sign.refused",
                client_id=client_id,
                credential_id=credential_id,
                authorization_id=auth_id,
                reason=reason,
            )
            return ApiError(400, "invalid_request", reason)

        with self.store.write() as db:
            auth = self.current(db, auth_id)
            if auth is None or auth.client_id != client_id or auth.credential_id != credential_id:
                raise refuse("Invalid parameter SAD", db)
            if auth.status != "confirmed" or auth.signatures is None or auth.used is None:
                raise refuse("The SAD is not (or no longer) authorized", db)
            if auth.sad_expires_at is None or self.clock() >= auth.sad_expires_at:
                raise refuse("The SAD has expired", db)
            kind = "ec" if self.keys[credential_id].key_algorithm() == "ec" else "rsa"
            name = sign_algo["algorithm"].native
            if name not in ALGORITHMS[kind]:
                raise refuse("Invalid parameter signAlgo for this credential's key", db)
            try:
                implied = sign_algo.hash_algo
            except ValueError:
                implied = None
            hash_algo = body.get("hashAlgo")
            if hash_algo is not None:
                try:
                    implied_param = algos.DigestAlgorithmId(hash_algo).native
                except (ValueError, TypeError):
                    raise refuse("Invalid parameter hashAlgo", db) from None
                if implied is not None and implied != implied_param:
                    raise refuse("hashAlgo does not match signAlgo", db)
                implied = implied_param
            if implied is not None and implied != auth.hash_algo:
                raise refuse("The hash algorithm differs from the authorized one", db)
            if len(set(requested)) != len(requested) or len(requested) > len(auth.hashes):
                raise refuse("More hashes than the SAD authorizes", db)
            used = list(auth.used)
            indexes = []
            for h in requested:
                if h not in auth.hashes:
                    raise refuse("A hash was not authorized by this SAD", db)
                i = auth.hashes.index(h)
                if used[i]:
                    raise refuse("This SAD was already used for this hash", db)
                used[i] = True
                indexes.append(i)
            self.store.update_authorization(db, auth.id, used=used)
            self.store.audit(
                db,
                "sign.released",
                client_id=client_id,
                credential_id=credential_id,
                authorization_id=auth.id,
                hashes=requested,
            )
        return [auth.signatures[i] for i in indexes]

    # -- the phone page

    def confirm(self, auth_id: str, pin: str, otp: str) -> Authorization:
        """The officer confirmed on the phone: the HSM signs the authorized hashes now."""
        with self.store.write() as db:
            auth = self.current(db, auth_id)
        if auth is None:
            raise ApiError(404, "invalid_request", "Unknown authorization")
        if auth.status != "pending":
            return auth
        if not pin:
            raise WrongPin("Type the PIN of your signing key.")
        with self.store.write() as db:
            self._check_otp(auth.owner, otp, db)
        digests = [base64.b64decode(h) for h in auth.hashes]
        try:
            values = self._sign(
                self.keys[auth.credential_id],
                digests,
                auth.hash_algo,
                pin,
                auth.client_id,
                auth.credential_id,
                auth.id,
            )
        except (WrongPin, PinLocked) as e:
            with self.store.write() as db:
                fresh = self.current(db, auth_id)
                assert fresh is not None
                failures = fresh.pin_failures + 1
                final = isinstance(e, PinLocked) or failures >= self.config.max_pin_tries
                self.store.update_authorization(
                    db,
                    auth_id,
                    pin_failures=failures,
                    **({"status": "failed", "decided_at": self.clock()} if final else {}),
                )
                if final:
                    self.store.audit(
                        db,
                        "authorize.failed",
                        client_id=auth.client_id,
                        credential_id=auth.credential_id,
                        authorization_id=auth_id,
                        reason="too many wrong PINs"
                        if not isinstance(e, PinLocked)
                        else "PIN locked",
                    )
            raise
        now = self.clock()
        with self.store.write() as db:
            fresh = self.current(db, auth_id)
            assert fresh is not None
            if fresh.status == "pending":
                self.store.update_authorization(
                    db,
                    auth_id,
                    status="confirmed",
                    decided_at=now,
                    sad_expires_at=now + self.config.sad_ttl_seconds,
                    signatures=[_b64(v) for v in values],
                    used=[False] * len(values),
                )
                self.store.audit(
                    db,
                    "authorize.confirmed",
                    client_id=auth.client_id,
                    credential_id=auth.credential_id,
                    authorization_id=auth_id,
                )
            auth = self.store.authorization(db, auth_id)
        assert auth is not None
        return auth

    def decline(self, auth_id: str) -> Authorization | None:
        with self.store.write() as db:
            auth = self.current(db, auth_id)
            if auth is not None and auth.status == "pending":
                self.store.update_authorization(
                    db, auth_id, status="declined", decided_at=self.clock()
                )
                self.store.audit(
                    db,
                    "authorize.declined",
                    client_id=auth.client_id,
                    credential_id=auth.credential_id,
                    authorization_id=auth_id,
                )
                auth = self.store.authorization(db, auth_id)
        return auth

    def signer_name(self, credential_id: str) -> str:
        try:
            cert = self.keys[credential_id].certificate().cert
        except EsignError:
            return self.config.credentials[credential_id].owner
        return str(
            cert.subject.native.get("common_name") or self.config.credentials[credential_id].owner
        )


# --- HTTP ------------------------------------------------------------------------------

api = Blueprint("csc", __name__, url_prefix="/csc/v1")
phone = Blueprint("phone", __name__)


def _service() -> RemoteService:
    return current_app.extensions["esign_remote"]  # type: ignore[no-any-return]


def _body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if data is None and not request.get_data():
        return {}
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_request", "The request body must be a JSON object")
    return data


def bearer(view: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        client = _service().client_for(token.strip()) if scheme.lower() == "bearer" else None
        if client is None:
            raise ApiError(401, "invalid_token", "Missing, invalid or expired access token")
        g.client_id = client
        return view(*args, **kwargs)

    return wrapped


@api.route("/info", methods=["GET", "POST"])
def info() -> Any:
    config = _service().config
    return jsonify(
        {
            "specs": API_VERSION,
            "name": config.name,
            "logo": f"{config.public_url.rstrip('/')}/static/remote.svg",
            "region": "VN",
            "lang": "vi-VN",
            "description": "Remote signing over HSM keys, confirmed on the officer's phone "
            "(esign). Extensions: credentials/authorize without PIN answers 202 and "
            "credentials/authorizeStatus, credentials/authorizeCancel.",
            "authType": ["basic"],
            "methods": [
                "auth/login",
                "auth/revoke",
                "credentials/list",
                "credentials/info",
                "credentials/authorize",
                "credentials/authorizeStatus",
                "credentials/authorizeCancel",
                "signatures/signHash",
            ],
        }
    )


@api.post("/auth/login")
def login() -> Any:
    auth = request.authorization
    if auth is None or auth.type != "basic" or not auth.username or auth.password is None:
        raise ApiError(
            401, "invalid_request", "Use HTTP Basic authentication with client_id and secret"
        )
    token, ttl = _service().login(auth.username, auth.password)
    return jsonify({"access_token": token, "expires_in": ttl})


@api.post("/auth/revoke")
@bearer
def revoke() -> Any:
    _service().revoke(request.headers["Authorization"].partition(" ")[2].strip())
    return "", 204


@api.post("/credentials/list")
@bearer
def credentials_list() -> Any:
    owner = _body().get("userID")
    return jsonify(
        {"credentialIDs": _service().credential_ids(owner if isinstance(owner, str) else None)}
    )


@api.post("/credentials/info")
@bearer
def credentials_info() -> Any:
    body = _body()
    certificates = body.get("certificates", "single")
    if certificates not in ("none", "single", "chain"):
        raise ApiError(400, "invalid_request", "Invalid parameter certificates")
    return jsonify(
        _service().credential_info(
            body.get("credentialID"), certificates, bool(body.get("certInfo"))
        )
    )


@api.post("/credentials/authorize")
@bearer
def credentials_authorize() -> Any:
    status, payload = _service().authorize(g.client_id, _body())
    return jsonify(payload), status


@api.post("/credentials/authorizeStatus")
@bearer
def credentials_authorize_status() -> Any:
    return jsonify(_service().status(g.client_id, _body().get("authorizationID")))


@api.post("/credentials/authorizeCancel")
@bearer
def credentials_authorize_cancel() -> Any:
    _service().cancel(g.client_id, _body().get("authorizationID"))
    return "", 204


@api.post("/signatures/signHash")
@bearer
def signatures_sign_hash() -> Any:
    return jsonify({"signatures": _service().sign_hash(g.client_id, _body())})


def _local(ts: float) -> str:
    return datetime.fromtimestamp(ts, LOCAL_TZ).strftime("%H:%M")


@phone.route("/confirm/<auth_id>", methods=["GET", "POST"])
def confirm(auth_id: str) -> Any:
    service = _service()
    with service.store.write() as db:
        auth = service.current(db, auth_id)
    if auth is None:
        return render_template("remote/missing.html"), 404
    error = ""
    status = 200
    if request.method == "POST" and auth.status == "pending":
        try:
            validate_csrf(request.form.get("csrf_token"))
        except ValidationError:
            return render_template("remote/missing.html", csrf=True), 400
        if request.form.get("action") == "decline":
            auth = service.decline(auth_id) or auth
        else:
            try:
                auth = service.confirm(
                    auth_id, request.form.get("pin", ""), request.form.get("otp", "")
                )
            except ApiError as e:  # a wrong or reused OTP
                error, status = ("otp", 400) if e.error == "invalid_otp" else ("other", 400)
            except WrongPin:
                error, status = "pin", 400
            except PinLocked:
                error, status = "locked", 423
            except TokenUnavailable:
                error, status = "hsm", 503
            fresh = service.store.get(auth_id)
            auth = fresh or auth
    return render_template(
        "remote/confirm.html",
        auth=auth,
        error=error,
        signer=service.signer_name(auth.credential_id),
        totp=auth.owner in service.config.totp_secrets,
        until=_local(auth.expires_at),
        tries_left=service.config.max_pin_tries - auth.pin_failures,
        csrf_token=generate_csrf(),
    ), status


# --- the app factory -------------------------------------------------------------------


def create_remote_app(config: RemoteConfig, *, clock: Callable[[], float] = time.time) -> Flask:
    """The service as a WSGI app; nothing happens at import time."""
    if not config.secret_key or len(config.secret_key) < 16:
        raise EsignError("The remote signing service needs a secret key of at least 16 characters.")
    if config.softhsm_conf:
        # SoftHSM reads its configuration when the module is first loaded in this process
        os.environ["SOFTHSM2_CONF"] = config.softhsm_conf
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=config.secret_key,
        SESSION_COOKIE_NAME="esign_remote",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=config.public_url.startswith("https://"),
        WTF_CSRF_TIME_LIMIT=max(config.confirm_ttl_seconds, 600),
        MAX_CONTENT_LENGTH=256 * 1024,
        JSON_AS_ASCII=False,
    )
    app.extensions["esign_remote"] = RemoteService(config, clock)
    app.register_blueprint(api)
    app.register_blueprint(phone)

    @app.errorhandler(ApiError)
    def api_error(e: ApiError) -> Any:
        response = jsonify({"error": e.error, "error_description": e.description})
        if e.status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="csc"'
        return response, e.status

    @app.errorhandler(EsignError)
    def esign_error(e: EsignError) -> Any:
        if isinstance(e, WrongPin):
            status, code = 400, "invalid_pin"
        elif isinstance(e, PinLocked):
            status, code = 400, "pin_locked"
        elif isinstance(e, UnknownCredential):
            status, code = 404, "invalid_request"
        elif isinstance(e, TokenUnavailable):
            status, code = 503, "temporarily_unavailable"
        elif isinstance(e, BackendError):
            status, code = 500, "server_error"
        else:
            status, code = 500, "server_error"
        return jsonify({"error": code, "error_description": str(e)}), status

    @app.errorhandler(CSRFError)
    def csrf_error(e: CSRFError) -> Any:
        return render_template("remote/missing.html", csrf=True), 400

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException) -> Any:
        if request.path.startswith("/csc/"):
            return jsonify({"error": "invalid_request", "error_description": e.description}), e.code
        return e

    @app.after_request
    def headers(response: Any) -> Any:
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
            "frame-ancestors 'none'; base-uri 'none'",
        )
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    return app
