"""Keys in PKCS#12 files: for development and the demo only.

The private keys of the development PKI (``keys/make_dev_pki.py``) sit in
files next to each other, protected by one well-known passphrase. That is
fine to show the whole flow on one machine and useless as protection: real
deployments sign with tokens, an HSM or a remote signing service.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from asn1crypto import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from esign.errors import BackendError, UnknownCredential, WrongPin
from esign.signing.backend import CertificateBundle, Pending, Signed, SignRequest

log = logging.getLogger(__name__)


class SoftkeyBackend:
    """Signs with the PKCS#12 files of a folder (``<credential>.p12``). Development and demo only."""

    name = "softkey"

    def __init__(self, dev_dir: Path, passphrase: str) -> None:
        self.dev_dir = Path(dev_dir)
        self._passphrase = passphrase.encode("utf-8")
        self._cache: dict[str, tuple[Any, CertificateBundle]] = {}
        self._lock = threading.Lock()
        log.warning(
            "softkey backend: signing keys are files in %s, for development and demo only",
            self.dev_dir,
        )

    def __repr__(self) -> str:  # never show the passphrase
        return f"SoftkeyBackend({str(self.dev_dir)!r})"

    def available_credentials(self) -> list[str]:
        """The credential names: every ``*.p12`` in the folder."""
        if not self.dev_dir.is_dir():
            return []
        return sorted(p.stem for p in self.dev_dir.glob("*.p12"))

    def _load(self, credential: str) -> tuple[Any, CertificateBundle]:
        with self._lock:
            cached = self._cache.get(credential)
            if cached is not None:
                return cached
            path = self.dev_dir / f"{credential}.p12"
            if (
                "/" in credential
                or "\\" in credential
                or credential.startswith(".")
                or not path.is_file()
            ):
                raise UnknownCredential(
                    "There is no development key %(credential)s in %(folder)s",
                    credential=credential,
                    folder=str(self.dev_dir),
                )
            try:
                key, cert, extra = pkcs12.load_key_and_certificates(
                    path.read_bytes(), self._passphrase
                )
            except ValueError as e:
                raise WrongPin(
                    "The development key %(credential)s does not open with the configured "
                    "passphrase (ESIGN_SOFTKEY_PASSPHRASE)",
                    credential=credential,
                ) from e
            if key is None or cert is None:
                raise BackendError(
                    "The file for %(credential)s holds no key and certificate",
                    credential=credential,
                )
            der = serialization.Encoding.DER
            bundle = CertificateBundle(
                cert=x509.Certificate.load(cert.public_bytes(der)),
                chain=tuple(x509.Certificate.load(c.public_bytes(der)) for c in extra),
            )
            # loading checks the key (about 30 ms for RSA): once per process
            self._cache[credential] = (key, bundle)
            return key, bundle

    def certificate(self, credential: str) -> CertificateBundle:
        return self._load(credential)[1]

    def sign(self, request: SignRequest) -> Signed | Pending:
        key, _ = self._load(request.credential)
        if request.md_algorithm != "sha256":
            raise BackendError(
                "The development keys sign with SHA-256 only, not %(md)s", md=request.md_algorithm
            )
        if isinstance(key, rsa.RSAPrivateKey):
            if request.mechanism not in ("rsassa_pkcs1v15", "sha256_rsa"):
                raise BackendError(
                    "This RSA key signs with PKCS#1 v1.5, not %(mechanism)s",
                    mechanism=request.mechanism,
                )
            value = key.sign(request.tbs, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(key, ec.EllipticCurvePrivateKey):
            if request.mechanism not in ("ecdsa", "sha256_ecdsa"):
                raise BackendError(
                    "This EC key signs with ECDSA, not %(mechanism)s", mechanism=request.mechanism
                )
            value = key.sign(request.tbs, ec.ECDSA(hashes.SHA256()))
        else:
            raise BackendError(
                "The development key %(credential)s has an unsupported type",
                credential=request.credential,
            )
        return Signed(signature=value)

    def collect(self, ref: str) -> Signed | Pending:
        raise BackendError("The development keys answer at once; there is nothing to collect")
