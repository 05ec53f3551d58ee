"""Everything a service needs, wired once: settings, database, blobs, workflows, backends.

The web app and the CLI each build one Context; services take it (and the
acting user) as parameters instead of reading globals.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from esign.config import Settings
from esign.errors import ConfigError
from esign.models import utcnow
from esign.services.blobs import BlobStore
from esign.services.db import Database
from esign.signing.backend import Backend
from esign.workflow.calendar import WorkingCalendar, load_calendar
from esign.workflow.definition import Registry, load_registry

if TYPE_CHECKING:
    from pyhanko.sign.timestamps import TimeStamper
    from pyhanko_certvalidator import ValidationContext

log = logging.getLogger(__name__)


@dataclass
class Context:
    settings: Settings
    db: Database
    blobs: BlobStore
    workflows: Registry
    calendar: WorkingCalendar
    backends: dict[str, Backend] = field(default_factory=dict)
    clock: Callable[[], datetime] = utcnow
    #: the Web Push sender (esign.services.push), None when push is off
    push: Any = field(default=None, repr=False)
    _trust_roots: tuple[Any, ...] | None = field(default=None, repr=False)

    @classmethod
    def create(cls, settings: Settings, *, backends: dict[str, Backend] | None = None) -> Context:
        folder = settings.workflows.definitions
        calendar_file = folder / "calendar-vn.toml"
        ctx = cls(
            settings=settings,
            db=Database(settings),
            blobs=BlobStore(settings.storage.blobs),
            workflows=load_registry(folder),
            calendar=load_calendar(calendar_file) if calendar_file.exists() else WorkingCalendar(),
            backends=backends if backends is not None else make_backends(settings),
        )
        from esign.services import push

        # committed new work is pushed to the officers' phones
        ctx.push = push.install(ctx)
        return ctx

    def now(self) -> datetime:
        return self.clock()

    def backend(self, name: str) -> Backend:
        try:
            return self.backends[name]
        except KeyError:
            raise ConfigError("The signing backend %(name)s is not configured on this server", name=name) from None

    def trust_roots(self) -> tuple[Any, ...]:
        """The certificates of ``[pki] trust_roots`` (read once)."""
        if self._trust_roots is None:
            from asn1crypto import pem, x509

            roots = []
            for path in self.settings.pki.trust_roots:
                try:
                    data = path.read_bytes()
                except OSError as e:
                    raise ConfigError("[pki] trust_roots: cannot read %(path)s", path=str(path)) from e
                blocks = [der for _, _, der in pem.unarmor(data, multiple=True)] if pem.detect(data) else [data]
                roots += [x509.Certificate.load(der) for der in blocks]
            for cert in roots:
                # parse completely now: asn1crypto parses lazily, and the web server's threads share
                # these objects (two threads parsing one lazily crashed pyHanko's trust manager)
                cert.native  # noqa: B018
                cert.subject.hashable  # noqa: B018
                cert.public_key.dump()
            self._trust_roots = tuple(roots)
        return self._trust_roots

    def timestamper(self) -> TimeStamper | None:
        """The TSA of ``[pki] tsa_url``; None when signatures are not timestamped."""
        url = self.settings.pki.tsa_url.strip()
        if not url:
            return None
        from esign.signing import deferred

        return deferred.timestamper(url)

    def validation_context(self) -> ValidationContext:
        """A fresh validation context for one operation: trust roots, fetching, ``[pki] revocation``."""
        from esign.signing import deferred

        return deferred.validation_context(self.trust_roots(), revocation=self.settings.pki.revocation)

    def close(self) -> None:
        if self.push is not None:
            self.push.close()
        self.db.dispose()


def make_backends(settings: Settings) -> dict[str, Backend]:
    """The backends named in [signing] backends and seal_backend."""
    backends: dict[str, Backend] = {}
    wanted = set(settings.signing.backends) | {settings.signing.seal_backend}
    if "softkey" in wanted:
        from esign.signing.softkey import SoftkeyBackend

        passphrase = settings.secret(settings.pki.softkey_passphrase_env) or "esign-dev"
        backends["softkey"] = SoftkeyBackend(settings.pki.dev_dir, passphrase)
    if "pkcs11" in wanted:
        import os

        from esign.signing.pkcs11 import Pkcs11Backend

        p11 = settings.pkcs11
        if p11.softhsm_conf:
            # SoftHSM reads its configuration once, when the module is first loaded
            conf = p11.softhsm_conf if os.path.isabs(p11.softhsm_conf) else str(settings.root / p11.softhsm_conf)
            os.environ.setdefault("SOFTHSM2_CONF", conf)
        backends["pkcs11"] = Pkcs11Backend(p11.module, p11.token_label, p11.pin_env, chain_pem=p11.chain_pem)
    if "csc" in wanted:
        from esign.signing.csc import CscBackend

        csc = settings.csc
        if not csc.base_url:
            raise ConfigError("[csc] base_url is needed for the csc backend")
        backends["csc"] = CscBackend(csc.base_url, csc.client_id or None, settings.secret(csc.client_secret_env))
    if "agent" in wanted:
        from esign.signing.external import ExternalBackend

        backends["agent"] = ExternalBackend("agent")
    unknown = wanted - set(backends)
    if unknown:
        raise ConfigError("[signing] names unknown backends: %(names)s", names=", ".join(sorted(unknown)))
    return backends
