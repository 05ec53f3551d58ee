"""Keys on a PKCS#11 token or HSM: the agency seal, server-side HSM keys, the desktop agent.

A :class:`Pkcs11Backend` is one token of one PKCS#11 module, chosen by module
path and token label; a credential is the label that a private key and its
certificate share on that token. The PIN comes, for one operation only, from
the :class:`~esign.signing.backend.SignRequest` (typed by a person) or from an
environment variable named in the configuration; it is never stored, logged
or put in an error message.

Hazards this module is built around (see PYHANKO-NOTES.md):

- a PKCS#11 library is loaded and initialised once per process, and SoftHSM
  reads its token list only then: a token that appears later (plugged in,
  provisioned) is found by re-initialising the library, which closes every
  session of the process, so it waits until no operation runs;
- the login state belongs to the process and the token: a second login on the
  same token fails with UserAlreadyLoggedIn; and python-pkcs11 initialises the
  library for single-threaded use, so concurrent calls, even on different
  tokens, crash SoftHSM. Every call into one module is therefore serialised by
  one lock, and each operation opens its own session and always closes (and
  so logs out) again.

Signing uses pyHanko's choice of PKCS#11 mechanism
(:func:`pyhanko.sign.pkcs11.select_pkcs11_signing_params`): RSA PKCS#1 v1.5
with the hash inside the token (``CKM_SHA256_RSA_PKCS``), and ECDSA; where the
token lacks the combined hash-and-sign mechanism (SoftHSM has no
``CKM_ECDSA_SHA256``), the digest is computed here and the raw mechanism signs
it (ECDSA signatures are then DER-encoded from r||s).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pkcs11
from asn1crypto import algos, pem, x509
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass, TokenFlag
from pkcs11 import exceptions as p11e
from pyhanko.sign.pkcs11 import (
    ECDSA_MECH_MAP,
    RSA_MECH_MAP,
    select_pkcs11_signing_params,
)

from esign.errors import (
    BackendError,
    EsignError,
    PinLocked,
    TokenUnavailable,
    UnknownCredential,
    WrongPin,
)
from esign.signing.backend import CertificateBundle, Pending, Signed, SignRequest

log = logging.getLogger(__name__)

#: digests a request may ask for
DIGESTS = ("sha256", "sha384", "sha512")
#: a token that is missing is looked for again (re-initialising the library) at most this often
RESCAN_INTERVAL = 1.0

_TOKEN_GONE = (
    p11e.NoSuchToken,
    p11e.TokenNotPresent,
    p11e.TokenNotRecognised,
    p11e.DeviceRemoved,
    p11e.DeviceError,
    p11e.SlotIDInvalid,
    p11e.SessionHandleInvalid,
    p11e.SessionClosed,
    p11e.UserPinNotInitialized,
)


@dataclass(frozen=True)
class TokenCertificate:
    """A certificate object on a token (what the desktop agent lists)."""

    label: str
    cert: x509.Certificate

    @property
    def sha256(self) -> str:
        """SHA-256 fingerprint of the DER, lowercase hex without separators."""
        return hashlib.sha256(self.cert.dump()).hexdigest()

    @property
    def subject(self) -> str:
        return self.cert.subject.human_friendly

    @property
    def pem(self) -> str:
        return pem.armor("CERTIFICATE", self.cert.dump()).decode("ascii")


def _signing_kind(mechanism: str) -> str:
    """'rsa' or 'ecdsa' for the mechanism names a SignRequest may carry."""
    name = mechanism.lower()
    if name in ("rsassa_pkcs1v15", "rsa") or name.endswith("_rsa"):
        return "rsa"
    if name == "ecdsa" or name.endswith("_ecdsa"):
        return "ecdsa"
    return name


def _is_ca(cert: x509.Certificate) -> bool:
    return bool(cert.ca) or cert.self_signed != "no"


# --- one loaded library per process ---------------------------------------------------


class _Module:
    """A PKCS#11 library loaded in this process, used by one thread at a time.

    python-pkcs11 initialises the library with ``C_Initialize(NULL)``, which by
    the PKCS#11 standard promises the library that no two threads call it at
    once; SoftHSM then runs without its mutexes. Concurrent calls, even on
    different tokens, failed with CKR_GENERAL_ERROR or crashed the process in
    testing, so every call into one module goes through one lock. Operations
    are short (a login, a lookup, one signature), so the wait is too.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.lib = pkcs11.lib(path)
        self.lock = threading.RLock()
        self._mechanisms: dict[str, frozenset[Any]] = {}
        self._last_rescan = 0.0

    def lookup(self, label: str) -> Any | None:
        try:
            token = self.lib.get_token(token_label=label)
        except (p11e.NoSuchToken, p11e.TokenNotPresent, p11e.TokenNotRecognised):
            return None
        if not token.flags & TokenFlag.TOKEN_INITIALIZED:
            return None
        return token

    def mechanisms(self, token: Any) -> frozenset[Any]:
        cached = self._mechanisms.get(token.label)
        if cached is None:
            cached = frozenset(token.slot.get_mechanisms())
            self._mechanisms[token.label] = cached
        return cached

    def rescan(self, force: bool = False) -> None:
        """Re-initialise the library so that it sees tokens plugged in since it was loaded.

        This closes every session of the process: call it holding :attr:`lock`.
        """
        if not force and time.monotonic() - self._last_rescan < RESCAN_INTERVAL:
            return
        try:
            self.lib.reinitialize()
        finally:
            self._last_rescan = time.monotonic()
            self._mechanisms.clear()

    @contextmanager
    def token(self, label: str) -> Iterator[Any]:
        """The token labelled ``label`` (None when absent), with the module to this thread."""
        with self.lock:
            token = self.lookup(label)
            if token is None:
                self.rescan()
                token = self.lookup(label)
            yield token


_MODULES: dict[str, _Module] = {}
_MODULES_GUARD = threading.Lock()


def _module(path: str) -> _Module:
    with _MODULES_GUARD:
        module = _MODULES.get(path)
        if module is None:
            try:
                module = _Module(path)
            except p11e.PKCS11Error as e:
                raise TokenUnavailable(
                    "The PKCS#11 module %(module)s could not be loaded. Check that the token's "
                    "driver is installed and the path in the configuration is right.",
                    module=path,
                ) from e
            _MODULES[path] = module
        return module


# --- the backend -----------------------------------------------------------------------


class Pkcs11Backend:
    """Signs with keys on one PKCS#11 token (or HSM partition); credential = key label."""

    def __init__(
        self,
        module_path: str,
        token_label: str,
        pin_env: str | None,
        *,
        chain_pem: Sequence[Path | str] = (),
        chain_from_token: bool = True,
        name: str = "pkcs11",
        env: Mapping[str, str] | None = None,
    ) -> None:
        """
        :param module_path: the PKCS#11 library (``/usr/lib/softhsm/libsofthsm2.so``)
        :param token_label: the token's label
        :param pin_env: name of the environment variable holding the user PIN, for
            keys the server uses unattended (the agency seal); ``None`` when a person
            types the PIN for each operation (``SignRequest.pin``)
        :param chain_pem: PEM files with the CA certificates above the signers
        :param chain_from_token: also take CA certificates stored on the token
        :param env: where ``pin_env`` is read (default: ``os.environ``, at each operation)
        """
        self.module_path = str(module_path)
        self.token_label = token_label
        self.pin_env = pin_env
        self.name = name
        self.chain_from_token = chain_from_token
        self._env = env
        self._extra_certs: list[x509.Certificate] = []
        for path in chain_pem:
            for _, _, der in pem.unarmor(Path(path).read_bytes(), multiple=True):
                self._extra_certs.append(x509.Certificate.load(der))

    def __repr__(self) -> str:
        return f"Pkcs11Backend({self.module_path!r}, token={self.token_label!r})"

    # -- sessions

    def _pin(self, pin: str | None) -> str | None:
        if pin:
            return pin
        if self.pin_env:
            value = (os.environ if self._env is None else self._env).get(self.pin_env)
            if value:
                return value
        return None

    def _absent(self) -> TokenUnavailable:
        return TokenUnavailable(
            "Token %(token)s is not plugged in or cannot be read. Plug it in (or check the "
            "HSM's connection) and try again.",
            token=self.token_label,
        )

    @contextmanager
    def _session(self, pin: str | None, login: bool) -> Iterator[tuple[Any, frozenset[Any]]]:
        """A session on the token, logged in when ``login``; always closed afterwards."""
        module = _module(self.module_path)
        with module.token(self.token_label) as token:
            if token is None:
                raise self._absent()
            kwargs: dict[str, Any] = {}
            if login:
                if token.flags & TokenFlag.USER_PIN_LOCKED:
                    raise self._locked()
                secret = self._pin(pin)
                if secret is None:
                    if not token.flags & TokenFlag.PROTECTED_AUTHENTICATION_PATH:
                        raise self._no_pin()
                    kwargs["user_pin"] = pkcs11.PROTECTED_AUTH  # the reader's own PIN pad
                else:
                    kwargs["user_pin"] = secret
            try:
                session = token.open(**kwargs)
            except p11e.UserAlreadyLoggedIn:
                # another part of this process holds a login on this token: a session
                # opened without PIN shares it
                session = self._wrapped(token.open)
            except p11e.PKCS11Error as e:
                raise self._translate(e, token) from e
            try:
                yield session, module.mechanisms(token)
            except p11e.PKCS11Error as e:
                raise self._translate(e, token) from e
            finally:
                try:
                    session.close()
                except p11e.PKCS11Error as e:  # a token pulled out mid-way
                    log.warning(
                        "token %s: closing the session failed (%s)",
                        self.token_label,
                        type(e).__name__,
                    )

    def _wrapped(self, call: Any, *args: Any) -> Any:
        try:
            return call(*args)
        except p11e.PKCS11Error as e:
            raise self._translate(e, None) from e

    def _no_pin(self) -> WrongPin:
        if self.pin_env:
            return WrongPin(
                "No PIN for token %(token)s: the environment variable %(env)s is not set on "
                "the server.",
                token=self.token_label,
                env=self.pin_env,
            )
        return WrongPin("Type the PIN of token %(token)s to sign.", token=self.token_label)

    def _locked(self) -> PinLocked:
        return PinLocked(
            "The PIN of token %(token)s is locked after too many wrong tries. The token's "
            "administrator can unlock it with the SO PIN (or ask the certificate provider).",
            token=self.token_label,
        )

    def _translate(self, e: p11e.PKCS11Error, token: Any | None) -> EsignError:
        if isinstance(e, p11e.PinLocked):
            return self._locked()
        if isinstance(e, p11e.PinExpired):
            return PinLocked(
                "The PIN of token %(token)s has expired. Change it with the token's own tool, "
                "then try again.",
                token=self.token_label,
            )
        if isinstance(e, (p11e.PinIncorrect, p11e.PinInvalid, p11e.PinLenRange)):
            flags = 0
            if token is not None:
                try:
                    flags = token.slot.get_token().flags
                except p11e.PKCS11Error:
                    pass
            if flags & TokenFlag.USER_PIN_LOCKED:
                return self._locked()
            if flags & TokenFlag.USER_PIN_FINAL_TRY:
                return WrongPin(
                    "The PIN of token %(token)s is wrong, and one more wrong PIN will lock the "
                    "token. Check it carefully before trying again.",
                    token=self.token_label,
                )
            return WrongPin(
                "The PIN of token %(token)s is wrong. Type it again carefully: the token locks "
                "after a few wrong tries.",
                token=self.token_label,
            )
        if isinstance(e, _TOKEN_GONE):
            return self._absent()
        if isinstance(
            e, (p11e.MechanismInvalid, p11e.KeyTypeInconsistent, p11e.FunctionNotSupported)
        ):
            return BackendError(
                "Token %(token)s does not support the signature mechanism esign asked for.",
                token=self.token_label,
            )
        return BackendError(
            "Token %(token)s refused the operation (%(reason)s).",
            token=self.token_label,
            reason=type(e).__name__,
        )

    # -- reading

    def token_present(self) -> bool:
        """Whether the token is plugged in and initialised."""
        module = _module(self.module_path)
        with module.token(self.token_label) as token:
            return token is not None

    def verify_pin(self, pin: str | None = None) -> None:
        """Log in once and out again: raises WrongPin, PinLocked or TokenUnavailable."""
        with self._session(pin, login=True):
            pass

    def token_certificates(self) -> list[TokenCertificate]:
        """Every certificate object on the token (no PIN needed)."""
        with self._session(None, login=False) as (session, _):
            found = []
            for obj in session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE}):
                try:
                    cert = x509.Certificate.load(obj[Attribute.VALUE])
                    cert.native  # noqa: B018 -- parse fully now: a damaged object is skipped
                except (ValueError, TypeError):
                    log.warning(
                        "token %s: an unreadable certificate object was skipped", self.token_label
                    )
                    continue
                found.append(TokenCertificate(label=obj[Attribute.LABEL], cert=cert))
        return found

    def signer_certificates(self) -> list[TokenCertificate]:
        """The certificates of signers on the token (CA certificates left out)."""
        return [c for c in self.token_certificates() if not _is_ca(c.cert)]

    def available_credentials(self) -> list[str]:
        """Labels of the signers' certificates on the token (their keys share the label)."""
        return sorted({c.label for c in self.signer_certificates()})

    def certificate(self, credential: str) -> CertificateBundle:
        on_token = self.token_certificates()
        matches = [c for c in on_token if c.label == credential and not _is_ca(c.cert)]
        if not matches:
            raise UnknownCredential(
                "There is no certificate %(credential)s on token %(token)s.",
                credential=credential,
                token=self.token_label,
            )
        if len({c.cert.dump() for c in matches}) > 1:
            raise BackendError(
                "Token %(token)s holds several different certificates labelled %(credential)s; "
                "remove the old one.",
                token=self.token_label,
                credential=credential,
            )
        cert = matches[0].cert
        pool = list(self._extra_certs)
        if self.chain_from_token:
            pool += [c.cert for c in on_token if _is_ca(c.cert)]
        return CertificateBundle(cert=cert, chain=_chain(cert, pool))

    # -- signing

    def sign(self, request: SignRequest) -> Signed | Pending:
        md = request.md_algorithm.lower().replace("-", "")
        if md not in DIGESTS:
            raise BackendError(
                "esign signs with SHA-256, SHA-384 or SHA-512, not %(md)s.", md=request.md_algorithm
            )
        kind = _signing_kind(request.mechanism)
        with self._session(request.pin, login=True) as (session, mechanisms):
            keys = list(
                session.get_objects(
                    {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.LABEL: request.credential}
                )
            )
            if not keys:
                raise UnknownCredential(
                    "There is no signing key %(credential)s on token %(token)s.",
                    credential=request.credential,
                    token=self.token_label,
                )
            if len(keys) > 1:
                raise BackendError(
                    "Token %(token)s holds several keys labelled %(credential)s; remove the old one.",
                    token=self.token_label,
                    credential=request.credential,
                )
            key = keys[0]
            key_type = key[Attribute.KEY_TYPE]
            if key_type == KeyType.RSA and kind == "rsa":
                algorithm, combined = f"{md}_rsa", RSA_MECH_MAP[md]
            elif key_type == KeyType.EC and kind == "ecdsa":
                algorithm, combined = f"{md}_ecdsa", ECDSA_MECH_MAP[md]
            else:
                raise BackendError(
                    "The key %(credential)s on token %(token)s cannot sign with %(mechanism)s.",
                    credential=request.credential,
                    token=self.token_label,
                    mechanism=request.mechanism,
                )
            # hash inside the token when it can; else hash here and use the raw mechanism
            use_raw = combined not in mechanisms
            if use_raw and kind == "rsa" and Mechanism.RSA_PKCS not in mechanisms:
                raise self._translate(p11e.MechanismInvalid(), None)
            spec = select_pkcs11_signing_params(
                algos.SignedDigestAlgorithm({"algorithm": algorithm}),
                md,
                use_raw_mechanism=use_raw,
                sign_kwargs={},
            )
            data = request.tbs
            if spec.pre_sign_transform is not None:
                data = spec.pre_sign_transform(data)
            value = key.sign(data, **spec.sign_kwargs)
            if spec.post_sign_transform is not None:
                value = spec.post_sign_transform(value)
        log.info("token %s: signed with %s (%s)", self.token_label, request.credential, algorithm)
        return Signed(signature=bytes(value))

    def collect(self, ref: str) -> Signed | Pending:
        raise BackendError("A PKCS#11 token answers at once; there is nothing to collect.")


def _chain(cert: x509.Certificate, pool: list[x509.Certificate]) -> tuple[x509.Certificate, ...]:
    """The certificates of ``pool`` from ``cert``'s issuer up to a root, in that order."""
    chain: list[x509.Certificate] = []
    current = cert
    seen = {cert.dump()}
    while current.self_signed == "no":
        issuer = next(
            (c for c in pool if c.subject == current.issuer and c.dump() not in seen), None
        )
        if issuer is None:
            break
        chain.append(issuer)
        seen.add(issuer.dump())
        current = issuer
    return tuple(chain)


def token_labels(module_path: str) -> list[str]:
    """Labels of the initialised tokens the module sees now (rescanning first)."""
    module = _module(str(module_path))
    with module.lock:
        module.rescan(force=True)
        try:
            slots = module.lib.get_slots(token_present=True)
        except p11e.PKCS11Error as e:
            raise TokenUnavailable(
                "The PKCS#11 module %(module)s cannot list its tokens.", module=module_path
            ) from e
        labels = []
        for slot in slots:
            try:
                token = slot.get_token()
            except p11e.PKCS11Error:
                continue
            if token.flags & TokenFlag.TOKEN_INITIALIZED:
                labels.append(token.label)
    return sorted(labels)
