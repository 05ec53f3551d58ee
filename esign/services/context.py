"""Everything a service needs, wired once: settings, database, blobs, workflows, backends.

The web app and the CLI each build one Context; services take it (and the
acting user) as parameters instead of reading globals.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from esign.config import Settings
from esign.errors import ConfigError
from esign.models import utcnow
from esign.services.blobs import BlobStore
from esign.services.db import Database
from esign.signing.backend import Backend
from esign.workflow.calendar import WorkingCalendar, load_calendar
from esign.workflow.definition import Registry, load_registry

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

    @classmethod
    def create(cls, settings: Settings, *, backends: dict[str, Backend] | None = None) -> Context:
        folder = settings.workflows.definitions
        calendar_file = folder / "calendar-vn.toml"
        return cls(
            settings=settings,
            db=Database(settings),
            blobs=BlobStore(settings.storage.blobs),
            workflows=load_registry(folder),
            calendar=load_calendar(calendar_file) if calendar_file.exists() else WorkingCalendar(),
            backends=backends if backends is not None else make_backends(settings),
        )

    def now(self) -> datetime:
        return self.clock()

    def backend(self, name: str) -> Backend:
        try:
            return self.backends[name]
        except KeyError:
            raise ConfigError("The signing backend %(name)s is not configured on this server", name=name) from None

    def close(self) -> None:
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
    if "agent" in wanted:
        from esign.signing.external import ExternalBackend

        backends["agent"] = ExternalBackend("agent")
    unknown = wanted - set(backends)
    if unknown:
        raise ConfigError("[signing] names unknown backends: %(names)s", names=", ".join(sorted(unknown)))
    return backends
