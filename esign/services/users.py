"""Units, users, roles and the certificates bound to them."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from asn1crypto import pem, x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from esign.errors import Conflict, DocumentError, EsignError, Forbidden, NotFound, TooManyAttempts
from esign.models import ROLES, AuditEvent, Certificate, Unit, User, UserRole
from esign.services import audit
from esign.services.context import Context
from esign.signing.backend import CertificateBundle

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the username is unknown, so both cases take the same time; made on
    first use, not at import (argon2 takes 64 MiB while hashing)."""
    return _hasher.hash("not a password")


DEVICES = ("token", "mobile", "seal")
MIN_PASSWORD = 8


class UserError(EsignError):
    status = 400
    code = "user"


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise UserError("A password needs at least %(n)s characters", n=MIN_PASSWORD)
    return _hasher.hash(password)


def check_password(user: User | None, password: str) -> bool:
    try:
        return _hasher.verify(user.password_hash if user else _dummy_hash(), password) and user is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def require_admin(actor: User | None) -> None:
    if actor is not None and "admin" not in actor.roles:
        raise Forbidden("Only an administrator can manage users and certificates")


def create_unit(session: Session, code: str, name: str, *, parent_name: str = "", place: str = "",
                number_suffix: str = "UBND") -> Unit:
    unit = session.scalar(select(Unit).where(Unit.code == code))
    if unit is None:
        unit = Unit(code=code, name=name, parent_name=parent_name, place=place, number_suffix=number_suffix)
        session.add(unit)
        session.flush()
    return unit


def create_user(
    session: Session,
    actor: User | None,
    *,
    unit: Unit,
    username: str,
    full_name: str,
    password: str,
    roles: list[str] | tuple[str, ...],
    title: str = "",
    email: str = "",
) -> User:
    """Create a user; ``actor`` is the admin doing it (None: the command line)."""
    require_admin(actor)
    username = username.strip().lower()
    if not username or not username.replace(".", "").replace("-", "").replace("_", "").isalnum():
        raise UserError("A username uses letters, digits, dots, dashes and underscores only")
    if session.scalar(select(User).where(User.username == username)):
        raise Conflict("The username %(name)s is taken", name=username)
    _check_roles(roles)
    user = User(
        unit=unit,
        username=username,
        full_name=full_name.strip(),
        title=title.strip(),
        email=email.strip(),
        password_hash=hash_password(password),
        role_rows=[UserRole(role=r) for r in dict.fromkeys(roles)],
    )
    session.add(user)
    session.flush()
    audit.record(session, "user.created", actor=actor, unit_id=unit.id, user=user.username, roles=sorted(user.roles))
    return user


def _check_roles(roles: list[str] | tuple[str, ...]) -> None:
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise UserError("Unknown role %(role)s; roles are %(roles)s", role=unknown[0], roles=", ".join(ROLES))


def set_roles(session: Session, actor: User | None, user: User, roles: list[str] | tuple[str, ...]) -> None:
    require_admin(actor)
    _check_roles(roles)
    if actor is not None and user.id == actor.id and "admin" not in roles:
        raise UserError("You cannot remove your own administrator role")
    user.role_rows = [UserRole(role=r) for r in dict.fromkeys(roles)]
    session.flush()
    audit.record(session, "user.roles", actor=actor, unit_id=user.unit_id, user=user.username, roles=sorted(roles))


def set_password(session: Session, actor: User | None, user: User, password: str) -> None:
    if actor is not None and actor.id != user.id:
        require_admin(actor)
    user.password_hash = hash_password(password)
    # whoever knew the old password is signed out everywhere
    user.session_version = (user.session_version or 0) + 1
    audit.record(session, "user.password", actor=actor, unit_id=user.unit_id, user=user.username)


def set_active(session: Session, actor: User | None, user: User, active: bool) -> None:
    require_admin(actor)
    user.active = active
    audit.record(session, "user.active", actor=actor, unit_id=user.unit_id, user=user.username, active=active)


#: wrong passwords allowed within LOCKOUT_WINDOW before sign-in is refused for the rest of it
MAX_FAILURES = 5
LOCKOUT_WINDOW = timedelta(minutes=15)


def authenticate(session: Session, username: str, password: str, *, now: datetime | None = None,
                 source: str = "") -> User | None:
    """The active user with this password, or None. Records the attempt in the audit trail.

    After MAX_FAILURES wrong passwords for one account within LOCKOUT_WINDOW,
    further attempts are refused (TooManyAttempts) until the window has passed,
    whatever the password: guessing cannot continue. The caller commits.
    """
    now = now or datetime.now(UTC)
    user = session.scalar(select(User).where(User.username == username.strip().lower()))
    if user is not None:
        _refuse_if_locked(session, user, now)
    if not check_password(user, password) or user is None or not user.active:
        if user is not None:
            audit.record(session, "auth.failed", actor=user, at=now, source=source)
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    audit.record(session, "auth.login", actor=user, at=now, source=source)
    return user


def _refuse_if_locked(session: Session, user: User, now: datetime) -> None:
    """TooManyAttempts after MAX_FAILURES wrong passwords or codes since the last success in the window."""
    since = now - LOCKOUT_WINDOW
    last_success = session.scalar(select(func.max(AuditEvent.seq)).where(
        AuditEvent.actor_id == user.id, AuditEvent.kind.in_(("auth.login", "auth.reauth")))) or 0
    failures = session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.actor_id == user.id, AuditEvent.kind == "auth.failed", AuditEvent.at > since,
        AuditEvent.seq > last_success)) or 0
    if failures >= MAX_FAILURES:
        raise TooManyAttempts("Too many wrong passwords; try again in %(minutes)s minutes",
                              minutes=int(LOCKOUT_WINDOW.total_seconds() // 60))


def reauthenticate(session: Session, user: User, secret: str, *, key: bytes, now: datetime | None = None,
                   source: str = "") -> bool:
    """Whether ``secret`` confirms that ``user`` is at the keyboard before signing.

    The secret is the TOTP code when the user has TOTP, else the password. A wrong
    one counts toward the sign-in lockout (TooManyAttempts once locked); a right one
    is recorded as ``auth.reauth``. ``key`` is the app's secret key (TOTP secrets are
    encrypted with a key derived from it). The caller commits.
    """
    now = now or datetime.now(UTC)
    _refuse_if_locked(session, user, now)
    if user.totp_secret:
        ok = _accept_totp(user, secret, key=key, now=now)
        method = "totp"
    else:
        ok = check_password(user, secret)
        method = "password"
    if not ok or not user.active:
        audit.record(session, "auth.failed", actor=user, at=now, source=source, method=method)
        return False
    audit.record(session, "auth.reauth", actor=user, at=now, source=source, method=method)
    return True


def end_sessions(session: Session, user: User) -> None:
    """Log out: every session of ``user`` opened before now stops working. The caller commits."""
    user.session_version = (user.session_version or 0) + 1
    audit.record(session, "auth.logout", actor=user)


# --- TOTP (authenticator app) -----------------------------------------------------------

#: seconds per TOTP code, and the codes accepted either side of the current one (clock drift)
TOTP_PERIOD = 30
TOTP_WINDOW = 1
TOTP_ISSUER = "esign"


def new_totp_secret() -> str:
    """A fresh random base32 secret for an authenticator app (160 bits)."""
    return pyotp.random_base32(32)


def totp_uri(user: User, secret: str) -> str:
    """The otpauth:// address an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret, interval=TOTP_PERIOD).provisioning_uri(name=user.username, issuer_name=TOTP_ISSUER)


def _totp_cipher(key: bytes) -> AESGCM:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"esign totp secret v1").derive(key)
    return AESGCM(derived)


def _seal_totp(secret: str, key: bytes, user_id: int) -> str:
    nonce = os.urandom(12)
    sealed = _totp_cipher(key).encrypt(nonce, secret.encode(), str(user_id).encode())
    return "v1:" + base64.urlsafe_b64encode(nonce + sealed).decode()


def _open_totp(stored: str, key: bytes, user_id: int) -> str | None:
    if not stored.startswith("v1:"):
        return None
    try:
        raw = base64.urlsafe_b64decode(stored[3:].encode())
        return _totp_cipher(key).decrypt(raw[:12], raw[12:], str(user_id).encode()).decode()
    except (InvalidTag, ValueError):
        # the app's secret key changed: the officer enrols again
        return None


def _matching_step(secret: str, code: str, now: datetime, after: int) -> int | None:
    """The time step whose code is ``code``, within the window and later than ``after``."""
    code = "".join(code.split())
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret, interval=TOTP_PERIOD)
    current = int(now.timestamp()) // TOTP_PERIOD
    found = None
    for step in range(current - TOTP_WINDOW, current + TOTP_WINDOW + 1):
        if hmac.compare_digest(totp.at(step * TOTP_PERIOD), code) and step > after:
            found = step
    return found


def _accept_totp(user: User, code: str, *, key: bytes, now: datetime) -> bool:
    secret = _open_totp(user.totp_secret, key, user.id)
    if secret is None:
        return False
    step = _matching_step(secret, code, now, user.totp_last_step or 0)
    if step is None:
        return False
    user.totp_last_step = step  # the same code, or an older one, is refused from now on
    return True


def enable_totp(session: Session, user: User, secret: str, code: str, password: str, *, key: bytes,
                now: datetime | None = None, source: str = "") -> None:
    """Turn on TOTP for ``user`` once a code from the app and the password prove both are in hand."""
    now = now or datetime.now(UTC)
    _refuse_if_locked(session, user, now)
    if not check_password(user, password):
        audit.record(session, "auth.failed", actor=user, at=now, source=source, method="password")
        raise UserError("The password is wrong")
    step = _matching_step(secret, code, now, 0)
    if step is None:
        raise UserError("The code does not match: check the phone's clock and type the newest code")
    user.totp_secret = _seal_totp(secret, key, user.id)
    user.totp_last_step = step
    audit.record(session, "auth.totp_enabled", actor=user, unit_id=user.unit_id, user=user.username)


def disable_totp(session: Session, actor: User, user: User, password: str = "", *, key: bytes,
                 now: datetime | None = None, source: str = "") -> None:
    """Turn TOTP off: the officer with the password, or an administrator (a lost phone)."""
    now = now or datetime.now(UTC)
    if actor.id != user.id:
        require_admin(actor)
    else:
        _refuse_if_locked(session, user, now)
        if not check_password(user, password):
            audit.record(session, "auth.failed", actor=user, at=now, source=source, method="password")
            raise UserError("The password is wrong")
    user.totp_secret = ""
    user.totp_last_step = 0
    audit.record(session, "auth.totp_disabled", actor=actor, unit_id=user.unit_id, user=user.username)


def get_user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound("There is no user %(name)s", name=username)
    return user


# --- certificates ---------------------------------------------------------------------


def parse_certificates(data: bytes) -> list[x509.Certificate]:
    """Certificates from PEM (one or several) or a single DER."""
    try:
        if pem.detect(data):
            return [x509.Certificate.load(der) for _, _, der in pem.unarmor(data, multiple=True)]
        cert = x509.Certificate.load(data)
        cert.native  # noqa: B018 - forces a full parse, so garbage fails here
        return [cert]
    except Exception as e:  # asn1crypto raises several types for bad input
        raise DocumentError("This file is not a certificate (PEM or DER)") from e


def fingerprint(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.dump()).hexdigest()


def bundle_of(certificate: Certificate) -> CertificateBundle:
    chain = parse_certificates(certificate.chain_pem.encode()) if certificate.chain_pem else []
    return CertificateBundle(cert=x509.Certificate.load(certificate.der), chain=tuple(chain))


@dataclass(frozen=True)
class CertificateChoice:
    backend: str
    credential: str
    subject: str


def bind_certificate(
    session: Session,
    ctx: Context,
    actor: User | None,
    *,
    owner: User | Unit,
    device: str,
    backend: str,
    credential: str,
    bundle: CertificateBundle | None = None,
) -> Certificate:
    """Bind a certificate to an officer (token, mobile) or a unit (seal).

    Without ``bundle`` the certificate is read from the backend; devices the
    server cannot reach (the desktop agent) pass the uploaded certificate.
    """
    require_admin(actor)
    if device not in DEVICES:
        raise UserError("Unknown device %(device)s; devices are %(devices)s", device=device, devices=", ".join(DEVICES))
    if (device == "seal") != isinstance(owner, Unit):
        raise UserError("The agency seal belongs to a unit; token and mobile certificates to a person")
    if bundle is None:
        bundle = ctx.backend(backend).certificate(credential)
    cert = bundle.cert
    digest = fingerprint(cert)
    existing = session.scalar(select(Certificate).where(Certificate.fingerprint == digest))
    if existing is not None:
        owner_id = existing.user_id if isinstance(owner, User) else existing.unit_id
        if owner_id == owner.id and existing.backend == backend and existing.credential == credential:
            existing.active = True
            return existing
        raise Conflict("This certificate is already bound to someone else")
    if session.scalar(select(Certificate).where(Certificate.backend == backend, Certificate.credential == credential)):
        raise Conflict("The credential %(credential)s of %(backend)s is already bound", credential=credential, backend=backend)
    row = Certificate(
        user_id=owner.id if isinstance(owner, User) else None,
        unit_id=owner.id if isinstance(owner, Unit) else None,
        device=device,
        backend=backend,
        credential=credential,
        der=cert.dump(),
        chain_pem="".join(pem.armor("CERTIFICATE", c.dump()).decode() for c in bundle.chain),
        fingerprint=digest,
        subject=cert.subject.human_friendly,
        issuer=cert.issuer.human_friendly,
        serial=format(cert.serial_number, "x"),
        not_before=cert.not_valid_before,
        not_after=cert.not_valid_after,
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        "certificate.bound",
        actor=actor,
        unit_id=owner.unit_id if isinstance(owner, User) else owner.id,
        owner=owner.username if isinstance(owner, User) else owner.code,
        device=device,
        backend=backend,
        credential=credential,
        fingerprint=digest,
    )
    return row


def unbind_certificate(session: Session, actor: User | None, certificate: Certificate) -> None:
    require_admin(actor)
    certificate.active = False
    audit.record(session, "certificate.unbound", actor=actor, fingerprint=certificate.fingerprint)


def available_credentials(ctx: Context) -> list[CertificateChoice]:
    """Credentials the server's own backends can list (for the admin's bind page)."""
    choices = []
    for name, backend in ctx.backends.items():
        lister = getattr(backend, "available_credentials", None)
        if lister is None:
            continue
        for credential in lister():
            try:
                subject = backend.certificate(credential).cert.subject.human_friendly
            except EsignError:
                continue
            choices.append(CertificateChoice(name, credential, subject))
    return choices
