"""The one interface every signing device sits behind.

A backend turns tbs bytes (the DER of the CMS signed attributes built by
:func:`esign.signing.deferred.prepare_signature`) into a signature value. It
never sees the PDF. Some devices answer at once (a key file, a server HSM);
others answer later (a phone confirmation): they return :class:`Pending`, and
the caller asks again with :meth:`Backend.collect`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

from asn1crypto import x509


@dataclass(frozen=True)
class CertificateBundle:
    """A signer's certificate and the intermediates that lead to a root."""

    cert: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()


@dataclass(frozen=True)
class SignRequest:
    """What a device is asked to sign.

    ``tbs`` is the DER of the signed attributes; the device signs it with
    ``md_algorithm`` (it hashes ``tbs`` itself) and ``mechanism``.
    ``label`` is a human title shown on devices that ask for confirmation.
    """

    credential: str
    tbs: bytes
    md_algorithm: str = "sha256"
    mechanism: str = "rsassa_pkcs1v15"
    label: str = ""
    #: a PIN typed by the user for this one operation; never stored or logged
    pin: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Signed:
    signature: bytes


@dataclass(frozen=True)
class Pending:
    """The device has the request but has not answered yet."""

    ref: str
    expires_at: datetime | None = None
    message: str = ""


@runtime_checkable
class Backend(Protocol):
    #: stored with every certificate and signature request ("softkey", "pkcs11", ...)
    name: str

    def certificate(self, credential: str) -> CertificateBundle:
        """The certificate (and chain) behind ``credential``; raises UnknownCredential."""

    def sign(self, request: SignRequest) -> Signed | Pending:
        """Sign now, or accept the request and answer later."""

    def collect(self, ref: str) -> Signed | Pending:
        """Ask again about a request that returned :class:`Pending`."""
