"""Signing pre-computed hashes with keys that stay in a PKCS#11 HSM.

The CSC API hands the service hashes, not data: RSA keys sign a DER
DigestInfo with ``CKM_RSA_PKCS``, EC keys sign the hash with ``CKM_ECDSA`` and
the raw r||s is DER-encoded, as CMS wants it. The session handling (one lock
per loaded module, login per operation, errors translated into sentences) is
:class:`~esign.signing.pkcs11.Pkcs11Backend`'s.

Each credential's key sits on a token (an HSM partition) of its own whose user
PIN is the officer's PIN: the service logs in with the PIN the officer typed
and never stores it, so the service's operator cannot sign without the
officer.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from asn1crypto import algos
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.util.ec import encode_ecdsa_signature

from esign.errors import BackendError, UnknownCredential
from esign.signing.backend import CertificateBundle
from esign.signing.pkcs11 import Pkcs11Backend

log = logging.getLogger(__name__)

#: length of a digest -> its algorithm
DIGEST_BY_SIZE = {32: "sha256", 48: "sha384", 64: "sha512"}


class HsmKey:
    """One credential: a key and its certificate on one token."""

    def __init__(self, module: str, token: str, key: str) -> None:
        self.token = token
        self.key = key
        # pin_env=None: the PIN is always the one the officer typed for this operation
        self._backend = Pkcs11Backend(module, token, None, name="remote")

    def certificate(self) -> CertificateBundle:
        return self._backend.certificate(self.key)

    def key_algorithm(self) -> str:
        """'rsa' or 'ec', from the certificate's public key."""
        algorithm = self.certificate().cert.public_key.algorithm
        return "ec" if algorithm == "ec" else "rsa"

    def sign_digests(self, digests: Sequence[bytes], md: str, pin: str) -> list[bytes]:
        """Sign each digest (made with ``md``); raises WrongPin, PinLocked, TokenUnavailable."""
        # a private method of the backend: its session is the one place that knows
        # SoftHSM's locking and the PKCS#11 error sentences
        with self._backend._session(pin, login=True) as (session, _mechanisms):
            found = list(
                session.get_objects(
                    {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.LABEL: self.key}
                )
            )
            if len(found) != 1:
                raise UnknownCredential(
                    "There is no single signing key %(key)s on HSM token %(token)s.",
                    key=self.key,
                    token=self.token,
                )
            key = found[0]
            values = []
            for digest in digests:
                if key[Attribute.KEY_TYPE] == KeyType.RSA:
                    info = algos.DigestInfo(
                        {"digest_algorithm": {"algorithm": md}, "digest": digest}
                    ).dump()
                    values.append(bytes(key.sign(info, mechanism=Mechanism.RSA_PKCS)))
                elif key[Attribute.KEY_TYPE] == KeyType.EC:
                    raw = key.sign(digest, mechanism=Mechanism.ECDSA)
                    values.append(bytes(encode_ecdsa_signature(raw)))
                else:
                    raise BackendError(
                        "The key %(key)s on HSM token %(token)s is neither RSA nor EC.",
                        key=self.key,
                        token=self.token,
                    )
        log.info("token %s: signed %d hash(es) with %s", self.token, len(values), self.key)
        return values
