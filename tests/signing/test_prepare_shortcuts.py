"""What prepare caches per certificate gives exactly what pyHanko would build each time."""

from __future__ import annotations

import asyncio
import hashlib

import pytest
from pyhanko.sign.signers.pdf_cms import ExternalSigner, PdfCMSSignedAttributes
from pyhanko_certvalidator.registry import SimpleCertificateStore

from esign.signing import deferred

from .conftest import at


def _pyhanko_attributes(bundle, mechanism: str, digest: bytes) -> bytes:  # type: ignore[no-untyped-def]
    signer = ExternalSigner(
        signing_cert=bundle.cert,
        cert_registry=SimpleCertificateStore.from_certs([bundle.cert, *bundle.chain]),
        signature_value=256,
        signature_mechanism=deferred._signed_digest_algorithm(mechanism),
    )
    attrs = asyncio.run(
        signer.signed_attrs(
            digest,
            "sha256",
            attr_settings=PdfCMSSignedAttributes(signing_time=at(9)),
            use_pades=True,
        )
    )
    return attrs.dump()


@pytest.mark.parametrize(
    "credential", ["nguyenthiquynhtrieu-token", "nguyenvana-mobile", "agency-seal"]
)
def test_cached_signed_attributes_equal_pyhankos_for_every_digest(softkey, credential: str) -> None:  # type: ignore[no-untyped-def]
    bundle = softkey.certificate(credential)
    mechanism = deferred.mechanism_of(bundle.cert)
    signer = ExternalSigner(
        signing_cert=bundle.cert,
        cert_registry=SimpleCertificateStore.from_certs([bundle.cert, *bundle.chain]),
        signature_value=256,
        signature_mechanism=deferred._signed_digest_algorithm(mechanism),
    )
    for n in range(3):  # the first call builds the template, the next ones reuse it
        digest = hashlib.sha256(f"{credential} {n}".encode()).digest()
        ours = asyncio.run(deferred._signed_attributes(signer, bundle, mechanism, digest, at(9)))
        assert ours == _pyhanko_attributes(bundle, mechanism, digest)
    assert (bundle.cert.sha256, mechanism) in deferred._ATTRIBUTE_TEMPLATES


def test_a_digest_that_holds_the_marker_still_gives_pyhankos_attributes(softkey) -> None:  # type: ignore[no-untyped-def]
    bundle = softkey.certificate("nguyenthiquynhtrieu-token")
    mechanism = deferred.mechanism_of(bundle.cert)
    signer = ExternalSigner(
        signing_cert=bundle.cert,
        cert_registry=SimpleCertificateStore.from_certs([bundle.cert, *bundle.chain]),
        signature_value=256,
        signature_mechanism=deferred._signed_digest_algorithm(mechanism),
    )
    digest = deferred._DIGEST_MARK  # replacing the marker by itself must still be right
    ours = asyncio.run(deferred._signed_attributes(signer, bundle, mechanism, digest, at(9)))
    assert ours == _pyhanko_attributes(bundle, mechanism, digest)
