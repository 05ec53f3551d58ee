"""Certificate revocation lists kept between operations, for a few minutes at most.

A CRL is published for many readers and says until when it stands
(``nextUpdate``); fetching it again for every signature costs a round trip
and a parse of a list that can run to megabytes, and loads the certificate
authority's server once per signature. esign asks OCSP about the signer's
own certificate every time; the CRLs (which in the PKIs esign serves cover
the intermediate CAs) are kept for :data:`KEEP_SECONDS` and never past their
``nextUpdate``, so a CA's early reissue is seen within minutes.

The cache sits under pyHanko's fetchers: a CRL taken from it is still
recorded among what a validation fetched, and is embedded in the document
like a downloaded one.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

from asn1crypto import crl
from pyhanko_certvalidator.fetchers.aiohttp_fetchers import AIOHttpFetcherBackend
from pyhanko_certvalidator.fetchers.aiohttp_fetchers.cert_fetch_client import (
    AIOHttpCertificateFetcher,
)
from pyhanko_certvalidator.fetchers.aiohttp_fetchers.crl_client import AIOHttpCRLFetcher
from pyhanko_certvalidator.fetchers.aiohttp_fetchers.ocsp_client import AIOHttpOCSPFetcher
from pyhanko_certvalidator.fetchers.api import Fetchers
from pyhanko_certvalidator.fetchers.common_utils import FetchBudget

#: longest a fetched CRL is reused (seconds)
KEEP_SECONDS = 300.0
#: distribution points remembered at most (a deployment knows a handful)
MAX_URLS = 64

_kept: dict[str, tuple[crl.CertificateList, float]] = {}
_lock = threading.Lock()


def _usable_until(fetched: crl.CertificateList, now_wall: float, now_mono: float) -> float:
    """The monotonic time after which ``fetched`` is fetched again (now: not to be kept)."""
    next_update = fetched["tbs_cert_list"]["next_update"].native
    if not isinstance(next_update, datetime):
        return now_mono
    seconds_left = next_update.astimezone(UTC).timestamp() - now_wall
    return now_mono + max(0.0, min(KEEP_SECONDS, seconds_left))


def kept(url: str) -> crl.CertificateList | None:
    """The CRL fetched from ``url`` a moment ago, if it may still be used."""
    with _lock:
        entry = _kept.get(url)
    if entry is None or time.monotonic() >= entry[1]:
        return None
    return entry[0]


def keep(url: str, fetched: crl.CertificateList) -> None:
    until = _usable_until(fetched, time.time(), time.monotonic())
    with _lock:
        if len(_kept) >= MAX_URLS:
            _kept.clear()
        _kept[url] = (fetched, until)


def forget() -> None:
    """Drop every kept CRL (the next validation fetches them again)."""
    with _lock:
        _kept.clear()


class _KeepingCRLFetcher(AIOHttpCRLFetcher):
    async def _single_fetch(self, url):  # type: ignore[no-untyped-def]
        known = kept(url)
        if known is None:
            fetched = await super()._single_fetch(url)
            keep(url, fetched)
            return fetched

        async def from_memory() -> crl.CertificateList:
            return known

        # through the fetcher's own bookkeeping: the CRL counts as fetched by this validation
        return await self._post_fetch_task(url, from_memory)


class KeepingFetcherBackend(AIOHttpFetcherBackend):
    """pyHanko's aiohttp fetchers, with CRLs taken from memory while they are fresh."""

    def get_fetchers(self) -> Fetchers:
        budget = FetchBudget(self.limits)
        session, timeout = self.session, self.per_request_timeout
        return Fetchers(
            ocsp_fetcher=AIOHttpOCSPFetcher(session, per_request_timeout=timeout, budget=budget),
            crl_fetcher=_KeepingCRLFetcher(session, per_request_timeout=timeout, budget=budget),
            cert_fetcher=AIOHttpCertificateFetcher(session, per_request_timeout=timeout, budget=budget),
        )
