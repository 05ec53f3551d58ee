"""Devices the server cannot reach: the officer's desktop agent or a plugin.

The server prepares the tbs and hands it to the officer's browser; the value
comes back through :func:`esign.services.signing.complete_signature`. Asking
this backend to sign therefore always answers :class:`Pending`.
"""

from __future__ import annotations

from esign.errors import UnknownCredential
from esign.signing.backend import CertificateBundle, Pending, Signed, SignRequest


class ExternalBackend:
    def __init__(self, name: str = "agent") -> None:
        self.name = name

    def certificate(self, credential: str) -> CertificateBundle:
        raise UnknownCredential(
            "This device's certificate is registered by uploading it; the server cannot read it"
        )

    def sign(self, request: SignRequest) -> Signed | Pending:
        return Pending(ref=request.credential, message="Waiting for the signing device")

    def collect(self, ref: str) -> Signed | Pending:
        return Pending(ref=ref, message="Waiting for the signing device")
