"""Typed, strict settings loaded from ``config.toml``.

Each TOML table maps to a frozen dataclass. An unknown or misspelt key stops
start-up with the key's path (``config.toml: [database] urll is not a known
setting``). Secrets never appear in the file: it names the environment
variable that holds each one. Any setting can be overridden by an environment
variable ``ESIGN_<TABLE>_<KEY>`` (``ESIGN_DATABASE_URL``), parsed to the
setting's type.

This module imports nothing from esign except the error tree.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from esign.errors import ConfigError

ENVIRONMENTS = ("development", "test", "production")


@dataclass(frozen=True)
class AppSettings:
    environment: str = "development"
    #: name of the environment variable holding Flask's secret key
    secret_key_env: str = "ESIGN_SECRET_KEY"
    #: public address, printed in QR codes and verification links
    base_url: str = "http://127.0.0.1:5000"
    default_locale: str = "vi"
    timezone: str = "Asia/Ho_Chi_Minh"
    max_upload_mb: int = 20
    #: a session ends after this many minutes without a request
    session_minutes: int = 60
    #: and, active or not, this many hours after signing in
    session_max_hours: int = 12
    #: signing needs a password (or TOTP code) typed within this many minutes
    reauth_minutes: int = 5
    #: set when the app is served over TLS: secure cookies and HSTS
    https: bool = False


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 5000
    #: processes (1: one waitress process; more: gunicorn's threaded workers)
    workers: int = 1
    #: threads per process
    threads: int = 8


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = "sqlite:///var/esign.db"
    echo: bool = False


@dataclass(frozen=True)
class StorageSettings:
    #: folder of content-addressed revision blobs
    blobs: Path = Path("var/blobs")
    #: folder of rendered page previews (a cache: safe to delete)
    previews: Path = Path("var/previews")


@dataclass(frozen=True)
class WorkflowSettings:
    definitions: Path = Path("workflows")
    default: str = "advisory-memo"


@dataclass(frozen=True)
class PkiSettings:
    #: PEM files of the only roots signatures are trusted against
    trust_roots: tuple[Path, ...] = (Path("keys/dev/root.cert.pem"),)
    #: folder of the development PKI (PKCS#12 files for the softkey backend)
    dev_dir: Path = Path("keys/dev")
    #: environment variable holding the passphrase of the development PKCS#12 files
    softkey_passphrase_env: str = "ESIGN_SOFTKEY_PASSPHRASE"
    #: timestamp authority; empty: signatures carry no timestamp and no validation data
    #: (PAdES B-B); set: every signature is B-LT and the issue step ends with a
    #: document timestamp (B-LTA)
    tsa_url: str = ""
    #: when a certificate's OCSP responder or CRL cannot be reached before signing or
    #: while embedding validation data: "hard-fail" refuses (required in production),
    #: "soft-fail" signs anyway (development). A revoked certificate is always refused.
    revocation: str = "hard-fail"
    #: port of the development PKI's OCSP, CRL and TSA services (``esign pki-services``)
    services_port: int = 9780


@dataclass(frozen=True)
class SigningSettings:
    #: minutes a prepared signature request stays open
    request_ttl_minutes: int = 15
    #: backend and credential of the agency seal applied at the issue step
    seal_backend: str = "softkey"
    seal_credential: str = "agency-seal"
    #: backends offered to officers, in order of preference
    backends: tuple[str, ...] = ("softkey",)
    #: where the officer's browser finds esign-agent (the desktop token agent)
    agent_url: str = "http://127.0.0.1:9796"


@dataclass(frozen=True)
class CscSettings:
    """A remote signing service speaking the CSC API (mobile certificates)."""

    base_url: str = ""
    client_id: str = ""
    #: environment variable holding the client secret
    client_secret_env: str = "ESIGN_CSC_CLIENT_SECRET"


@dataclass(frozen=True)
class Pkcs11Settings:
    """A token or HSM the server itself reaches (the agency seal, server-held keys)."""

    module: str = "/usr/lib/softhsm/libsofthsm2.so"
    token_label: str = "agency-seal"
    #: environment variable holding the token's PIN
    pin_env: str = "ESIGN_SEAL_PIN"
    #: PEM files of intermediates to embed with the token's certificates
    chain_pem: tuple[Path, ...] = ()
    #: SoftHSM2 configuration to load (development); empty: the environment's
    softhsm_conf: str = ""


@dataclass(frozen=True)
class NotificationSettings:
    """Live updates of new work in open pages, and Web Push to officers' phones."""

    #: seconds between two checks for new work by an open page (it pauses while hidden)
    poll_seconds: int = 20
    #: send Web Push messages to the browsers officers enabled them on
    push_enabled: bool = True
    #: PEM file of the server's VAPID private key (P-256); empty: ``vapid.pem`` in
    #: [pki] dev_dir, made on first use (development only; set it in production)
    vapid_private_key_file: str = ""
    #: contact the push services are given in the VAPID claim (mailto: or https:)
    vapid_subject: str = "mailto:esign@localhost"
    #: seconds one delivery to a push service may take
    push_timeout_seconds: int = 5
    #: seconds a push service keeps an undelivered message
    push_ttl_seconds: int = 86400


@dataclass(frozen=True)
class Settings:
    app: AppSettings = field(default_factory=AppSettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    workflows: WorkflowSettings = field(default_factory=WorkflowSettings)
    pki: PkiSettings = field(default_factory=PkiSettings)
    signing: SigningSettings = field(default_factory=SigningSettings)
    pkcs11: Pkcs11Settings = field(default_factory=Pkcs11Settings)
    csc: CscSettings = field(default_factory=CscSettings)
    notifications: NotificationSettings = field(default_factory=NotificationSettings)
    #: folder that relative paths were resolved against
    root: Path = Path(".")

    @property
    def is_production(self) -> bool:
        return self.app.environment == "production"

    def secret(self, env_name: str, env: Mapping[str, str] | None = None) -> str | None:
        """The value of a secret named by its environment variable, or None."""
        value = (os.environ if env is None else env).get(env_name)
        return value or None

    def replace(self, **sections: object) -> Settings:
        """A copy with whole sections or single keys replaced: replace(database={"url": ...})."""
        changes: dict[str, object] = {}
        for name, value in sections.items():
            current = getattr(self, name)
            if isinstance(value, Mapping) and dataclasses.is_dataclass(current):
                changes[name] = dataclasses.replace(
                    current, **{k: _coerce(v, _field_types(type(current))[k], f"[{name}] {k}", self.root) for k, v in value.items()}
                )
            else:
                changes[name] = value
        return dataclasses.replace(self, **changes)


def _field_types(cls: type) -> dict[str, object]:
    return typing.get_type_hints(cls)


def _coerce(value: object, kind: object, where: str, root: Path) -> object:
    """Check ``value`` against the declared type ``kind`` and convert it."""
    origin = typing.get_origin(kind)
    if kind is bool:
        if isinstance(value, str):
            lowered = value.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off", ""):
                return False
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where} must be true or false, not {value!r}")
    if kind is int:
        if isinstance(value, bool):
            raise ConfigError(f"{where} must be a whole number, not {value!r}")
        try:
            return int(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ConfigError(f"{where} must be a whole number, not {value!r}") from None
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be text, not {value!r}")
        return value
    if kind is Path:
        if not isinstance(value, (str, Path)):
            raise ConfigError(f"{where} must be a path, not {value!r}")
        path = Path(value)
        return path if path.is_absolute() else root / path
    if origin is tuple:
        (item_kind, _ellipsis) = typing.get_args(kind)
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, not {value!r}")
        return tuple(_coerce(item, item_kind, where, root) for item in value)
    if origin in (typing.Union, types.UnionType):
        raise ConfigError(f"{where}: unsupported setting type")  # pragma: no cover
    raise ConfigError(f"{where}: unsupported setting type {kind!r}")  # pragma: no cover


def _build_section(cls: type, data: Mapping[str, object], table: str, source: str, root: Path) -> object:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: [{table}] must be a table")
    types_ = _field_types(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in known:
            raise ConfigError(f"{source}: [{table}] {key} is not a known setting (known: {', '.join(sorted(known))})")
    values = {key: _coerce(data[key], types_[key], f"{source}: [{table}] {key}", root) for key in data}
    # relative paths among the defaults are resolved against the config's folder too
    for f in dataclasses.fields(cls):
        if f.name in values:
            continue
        default = f.default if f.default is not dataclasses.MISSING else None
        if isinstance(default, Path) and not default.is_absolute():
            values[f.name] = root / default
        elif isinstance(default, tuple) and default and all(isinstance(p, Path) for p in default):
            values[f.name] = tuple(p if p.is_absolute() else root / p for p in default)
    return cls(**values)


def load_settings(
    path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, object]] | None = None,
) -> Settings:
    """Read ``config.toml`` (or ``$ESIGN_CONFIG``), apply ``ESIGN_*`` variables, validate.

    ``overrides`` ({"database": {"url": ...}}) is applied last; tests use it.
    """
    env = os.environ if env is None else env
    config_path = Path(path or env.get("ESIGN_CONFIG") or "config.toml")
    source = str(config_path)
    data: dict[str, object] = {}
    if config_path.exists():
        try:
            data = tomllib.loads(config_path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{source} is not valid TOML: {e}") from e
    elif path is not None:
        raise ConfigError(f"{source} does not exist")
    root = config_path.resolve().parent

    sections = {f.name: f for f in dataclasses.fields(Settings) if f.name != "root"}
    for table in data:
        if table not in sections:
            raise ConfigError(f"{source}: [{table}] is not a known table (known: {', '.join(sorted(sections))})")

    merged: dict[str, dict[str, object]] = {name: dict(data.get(name, {})) for name in sections}  # type: ignore[arg-type]
    # ESIGN_<TABLE>_<KEY> overrides; ESIGN_CONFIG and secrets named by the file are not settings
    for var, value in env.items():
        if not var.startswith("ESIGN_"):
            continue
        rest = var[len("ESIGN_"):].lower()
        for table in sections:
            if rest.startswith(table + "_"):
                key = rest[len(table) + 1:]
                cls = typing.get_type_hints(Settings)[table]
                if key in {x.name for x in dataclasses.fields(cls)}:
                    merged[table][key] = value
    for table, values in (overrides or {}).items():
        if table not in sections:
            raise ConfigError(f"overrides: [{table}] is not a known table")
        merged[table].update(values)

    built = {
        table: _build_section(typing.get_type_hints(Settings)[table], merged[table], table, source, root)
        for table in sections
    }
    built["database"] = _anchor_sqlite(built["database"], root)  # type: ignore[arg-type]
    settings = Settings(root=root, **built)  # type: ignore[arg-type]
    if settings.is_production and env.get("ESIGN_FAULT_POINT"):
        raise ConfigError(f"{source}: ESIGN_FAULT_POINT makes the server kill itself (crash tests only); "
                          "unset it in production")
    _check(settings, source)
    return settings


def _anchor_sqlite(database: DatabaseSettings, root: Path) -> DatabaseSettings:
    """A relative SQLite path is relative to the config file, like every other path."""
    prefix = "sqlite:///"
    if database.url.startswith(prefix) and not database.url.startswith(prefix + "/"):
        rest = database.url[len(prefix):]
        if rest and not rest.startswith(":memory:"):
            return dataclasses.replace(database, url=prefix + str(root / rest))
    return database


def _check(settings: Settings, source: str) -> None:
    app = settings.app
    if app.environment not in ENVIRONMENTS:
        raise ConfigError(f"{source}: [app] environment must be one of {', '.join(ENVIRONMENTS)}")
    if app.default_locale not in ("vi", "en"):
        raise ConfigError(f"{source}: [app] default_locale must be vi or en")
    if app.max_upload_mb < 1:
        raise ConfigError(f"{source}: [app] max_upload_mb must be at least 1")
    if app.session_minutes < 1 or app.session_max_hours < 1 or app.reauth_minutes < 1:
        raise ConfigError(f"{source}: [app] session_minutes, session_max_hours and reauth_minutes must be at least 1")
    if settings.server.workers < 1 or settings.server.threads < 1:
        raise ConfigError(f"{source}: [server] workers and threads must be at least 1")
    if settings.pki.revocation not in ("hard-fail", "soft-fail"):
        raise ConfigError(f"{source}: [pki] revocation must be hard-fail or soft-fail")
    if settings.signing.request_ttl_minutes < 1:
        raise ConfigError(f"{source}: [signing] request_ttl_minutes must be at least 1")
    notifications = settings.notifications
    if notifications.poll_seconds < 2 or notifications.push_timeout_seconds < 1:
        raise ConfigError(f"{source}: [notifications] poll_seconds must be at least 2 and "
                          "push_timeout_seconds at least 1")
    if notifications.push_enabled and not notifications.vapid_subject.startswith(("mailto:", "https:")):
        raise ConfigError(f"{source}: [notifications] vapid_subject must be a mailto: or https: address")
    if settings.is_production:
        if not settings.app.https:
            raise ConfigError(f"{source}: [app] https must be true in production (secure cookies)")
        if settings.pki.revocation != "hard-fail":
            raise ConfigError(
                f"{source}: [pki] revocation must be hard-fail in production: an officer whose "
                "certificate status cannot be checked must not sign"
            )
        if "softkey" in settings.signing.backends or settings.signing.seal_backend == "softkey":
            raise ConfigError(
                f"{source}: [signing] the softkey backend holds keys in files and is for development only"
            )
        if settings.notifications.push_enabled and not settings.notifications.vapid_private_key_file:
            raise ConfigError(
                f"{source}: [notifications] vapid_private_key_file must name the server's VAPID key in "
                "production (make one with: esign push-keys)"
            )
