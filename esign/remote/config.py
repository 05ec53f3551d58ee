"""Settings of the remote signing service (``esign-remote``), from its own TOML file.

The service is a separate program with its own file (``remote.toml``), so an
organisation can run it on another machine than esign. Like esign's
``config.toml``, unknown keys stop start-up with the key's path, and secrets
appear in the file only as the names of the environment variables that hold
them; :func:`load_remote_config` reads those variables once, at start-up.

Example::

    [service]
    database = "var/remote.db"          # pending authorizations and the audit log
    public_url = "https://ky.example.vn" # links to the phone page
    secret_key_env = "ESIGN_REMOTE_SECRET_KEY"
    confirm_ttl_seconds = 300
    sad_ttl_seconds = 300
    token_ttl_seconds = 3600
    host = "127.0.0.1"
    port = 9790

    [hsm]
    module = "/usr/lib/softhsm/libsofthsm2.so"
    softhsm_conf = ""                    # development: SoftHSM2's configuration

    [credentials."nguyenvana-mobile"]    # CSC credentialID
    token = "nguyenvana-mobile"          # token (HSM partition) label; its user PIN is the officer's PIN
    key = "nguyenvana-mobile"            # label of the key and certificate on it
    owner = "nguyenvana"                 # the officer's username

    [clients.esign]                      # a calling application (client_id = esign)
    secret_env = "ESIGN_REMOTE_CLIENT_SECRET"

    [users.nguyenthiquynhtrieu]          # TOTP on the phone page for this officer
    totp_secret_env = "ESIGN_REMOTE_TOTP_NGUYENTHIQUYNHTRIEU"  # base32
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from esign.errors import ConfigError


@dataclass(frozen=True)
class CredentialConfig:
    """One CSC credential: a key on an HSM token, and the officer it belongs to."""

    token: str
    key: str
    owner: str


@dataclass(frozen=True)
class RemoteConfig:
    """Everything :func:`esign.remote.create_remote_app` needs; secrets already resolved."""

    database: Path
    #: Flask's secret (CSRF of the phone page) and the key that MACs every SAD
    secret_key: str = field(repr=False)
    #: credential id -> where its key is and whose it is
    credentials: Mapping[str, CredentialConfig]
    #: client_id -> client secret of the applications allowed to call the API
    clients: Mapping[str, str] = field(repr=False)
    module: str = "/usr/lib/softhsm/libsofthsm2.so"
    softhsm_conf: str = ""
    #: username -> base32 TOTP secret, for officers who confirm with a one-time code too
    totp_secrets: Mapping[str, str] = field(default_factory=dict, repr=False)
    public_url: str = "http://127.0.0.1:9790"
    name: str = "esign remote signing service"
    confirm_ttl_seconds: int = 300
    sad_ttl_seconds: int = 300
    token_ttl_seconds: int = 3600
    #: wrong PINs typed for one authorization before it fails
    max_pin_tries: int = 3
    #: consecutive wrong PINs for one credential (any authorization) before it is locked
    max_pin_failures: int = 5
    #: how long such a lock lasts
    pin_lock_seconds: int = 900
    #: most hashes one authorization may cover
    multisign: int = 20
    host: str = "127.0.0.1"
    port: int = 9790
    threads: int = 4


_SERVICE_KEYS = {
    "database": Path,
    "public_url": str,
    "name": str,
    "secret_key_env": str,
    "confirm_ttl_seconds": int,
    "sad_ttl_seconds": int,
    "token_ttl_seconds": int,
    "max_pin_tries": int,
    "max_pin_failures": int,
    "pin_lock_seconds": int,
    "multisign": int,
    "host": str,
    "port": int,
    "threads": int,
}
_HSM_KEYS = {"module": str, "softhsm_conf": str}


def _check(table: Mapping[str, Any], known: Mapping[str, type], where: str) -> None:
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where} must be a table")
    for key, value in table.items():
        if key not in known:
            raise ConfigError(
                f"{where} {key} is not a known setting (known: {', '.join(sorted(known))})"
            )
        kind = known[key]
        ok = (
            isinstance(value, str)
            if kind in (str, Path)
            else (isinstance(value, int) and not isinstance(value, bool))
        )
        if not ok:
            raise ConfigError(f"{where} {key} must be {'text' if kind is not int else 'a number'}")


def _secret(env: Mapping[str, str], name: str, where: str) -> str:
    value = env.get(name)
    if not value:
        raise ConfigError(f"{where}: the environment variable {name} is not set")
    return value


def load_remote_config(
    path: str | os.PathLike[str], env: Mapping[str, str] | None = None
) -> RemoteConfig:
    """Read and check ``remote.toml``; secrets come from the variables it names."""
    env = os.environ if env is None else env
    path = Path(path)
    source = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{source} does not exist") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{source} is not valid TOML: {e}") from e
    root = path.resolve().parent
    for table in data:
        if table not in ("service", "hsm", "credentials", "clients", "users"):
            raise ConfigError(
                f"{source}: [{table}] is not a known table "
                "(known: clients, credentials, hsm, service, users)"
            )
    service = data.get("service", {})
    _check(service, _SERVICE_KEYS, f"{source}: [service]")
    hsm = data.get("hsm", {})
    _check(hsm, _HSM_KEYS, f"{source}: [hsm]")

    credentials = {}
    for cred_id, table in data.get("credentials", {}).items():
        where = f'{source}: [credentials."{cred_id}"]'
        _check(table, {"token": str, "key": str, "owner": str}, where)
        missing = {"token", "key", "owner"} - set(table)
        if missing:
            raise ConfigError(f"{where} needs {', '.join(sorted(missing))}")
        credentials[cred_id] = CredentialConfig(**table)
    clients = {}
    for client_id, table in data.get("clients", {}).items():
        where = f"{source}: [clients.{client_id}]"
        _check(table, {"secret_env": str}, where)
        if "secret_env" not in table:
            raise ConfigError(f"{where} needs secret_env")
        clients[client_id] = _secret(env, table["secret_env"], where)
    totp = {}
    for username, table in data.get("users", {}).items():
        where = f"{source}: [users.{username}]"
        _check(table, {"totp_secret_env": str}, where)
        if "totp_secret_env" in table:
            totp[username] = _secret(env, table["totp_secret_env"], where)
    if not credentials:
        raise ConfigError(f"{source}: [credentials] names no credential")
    if not clients:
        raise ConfigError(f"{source}: [clients] names no client application")

    database = Path(service.get("database", "var/remote.db"))
    values: dict[str, Any] = {
        k: v for k, v in service.items() if k not in ("database", "secret_key_env")
    }
    values.update(hsm)
    if values.get("softhsm_conf") and not Path(values["softhsm_conf"]).is_absolute():
        values["softhsm_conf"] = str(root / values["softhsm_conf"])
    return RemoteConfig(
        database=database if database.is_absolute() else root / database,
        secret_key=_secret(
            env,
            service.get("secret_key_env", "ESIGN_REMOTE_SECRET_KEY"),
            f"{source}: [service] secret_key_env",
        ),
        credentials=credentials,
        clients=clients,
        totp_secrets=totp,
        **values,
    )
