"""Set up esign-remote for development and the demo: the demo people's mobile certificates.

Usage::

    .venv/bin/python keys/remote.py keys/dev [--port 9790]     set up (idempotent)
    .venv/bin/python keys/remote.py keys/dev totp USERNAME      the current one-time code

Creates, only where missing:

- ``keys/dev/remote/softhsm/``: a SoftHSM2 "HSM" of its own (not the officers'
  USB tokens of ``keys/tokens.py``) with one token per mobile certificate of
  ``keys/dev/people.json`` (``<username>-mobile``); the token's user PIN is the
  officer's PIN, ``123456`` for every demo person (development default);
- ``keys/dev/remote/secrets.env`` (mode 600): the service's secret key, the
  client secret esign uses to call it (``ESIGN_CSC_CLIENT_SECRET``, read by both
  programs) and a TOTP secret for the chair, drawn once at random;
- ``keys/dev/remote/remote.toml``: the service's configuration (port, the
  database ``var/remote.db``, one credential per token, the client ``esign``,
  TOTP for the chair).

The private keys are imported from the development PKCS#12 files, which only
a development set-up may do. ``make run`` runs this, then starts
``esign-remote --config keys/dev/remote/remote.toml`` in the background.
"""

from __future__ import annotations

import argparse
import base64
import importlib.util
import json
import os
import secrets
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: the chair confirms with a one-time code as well as the PIN (as officers with TOTP enabled do)
TOTP_PEOPLE = ("nguyenthiquynhtrieu",)
CLIENT_SECRET_ENV = "ESIGN_CSC_CLIENT_SECRET"
SECRET_KEY_ENV = "ESIGN_REMOTE_SECRET_KEY"


def _tokens_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("esign_dev_tokens", Path(__file__).with_name("tokens.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def totp_env(username: str) -> str:
    return f"ESIGN_REMOTE_TOTP_{username.upper()}"


def mobile_credentials(pki_dir: Path) -> dict[str, str]:
    """credential id -> owner, for every person of the development PKI with a mobile certificate."""
    people = json.loads((pki_dir / "people.json").read_text(encoding="utf-8"))["people"]
    return {
        f"{p['username']}-mobile": p["username"]
        for p in people
        if f"{p['username']}-mobile" in p.get("credentials", [])
    }


def read_env(path: Path) -> dict[str, str]:
    values = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            key, sep, value = line.partition("=")
            if sep and not key.startswith("#"):
                values[key.strip()] = value.strip()
    return values


def _secrets(folder: Path, owners: set[str]) -> dict[str, str]:
    path = folder / "secrets.env"
    values = read_env(path)
    wanted = {SECRET_KEY_ENV: lambda: secrets.token_urlsafe(32), CLIENT_SECRET_ENV: lambda: secrets.token_urlsafe(32)}
    for username in TOTP_PEOPLE:
        if username in owners:
            wanted[totp_env(username)] = lambda: base64.b32encode(secrets.token_bytes(20)).decode("ascii")
    changed = False
    for key, make in wanted.items():
        if not values.get(key):
            values[key] = make()
            changed = True
    if changed or not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write("# Development secrets of esign-remote (keys/remote.py); never use them elsewhere.\n")
            out.writelines(f"{k}={v}\n" for k, v in values.items())
    path.chmod(0o600)
    return values


def _config(folder: Path, conf: Path, credentials: dict[str, str], port: int, totp: list[str]) -> Path:
    lines = [
        "# Written by keys/remote.py: esign-remote for development and the demo.",
        "[service]",
        f'database = "{(ROOT / "var" / "remote.db").as_posix()}"',
        f'public_url = "http://127.0.0.1:{port}"',
        'name = "esign-remote (phát triển / development)"',
        f'secret_key_env = "{SECRET_KEY_ENV}"',
        "confirm_ttl_seconds = 300",
        'host = "127.0.0.1"',
        f"port = {port}",
        "",
        "[hsm]",
        'module = "/usr/lib/softhsm/libsofthsm2.so"',
        f'softhsm_conf = "{conf.as_posix()}"',
        "",
        "[clients.esign]",
        f'secret_env = "{CLIENT_SECRET_ENV}"',
        "",
    ]
    for username in totp:
        lines += [f"[users.{username}]", f'totp_secret_env = "{totp_env(username)}"', ""]
    for credential, owner in sorted(credentials.items()):
        lines += [
            f'[credentials."{credential}"]',
            f'token = "{credential}"',
            f'key = "{credential}"',
            f'owner = "{owner}"',
            "",
        ]
    path = folder / "remote.toml"
    text = "\n".join(lines)
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")
    return path


def set_up(pki_dir: Path, port: int) -> tuple[Path, list[str]]:
    pki_dir = pki_dir.resolve()
    folder = pki_dir / "remote"
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    credentials = mobile_credentials(pki_dir)
    setup = _tokens_module().provision_tokens(
        pki_dir, folder / "softhsm", [], extra_credentials={c: [c] for c in credentials}
    )
    values = _secrets(folder, set(credentials.values()))
    totp = [u for u in TOTP_PEOPLE if totp_env(u) in values and u in credentials.values()]
    config = _config(folder, setup.conf, credentials, port, totp)
    (ROOT / "var").mkdir(exist_ok=True)
    return config, [*setup.actions, f"credentials: {', '.join(sorted(credentials))}"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Set up esign-remote for development (mobile certificates).")
    parser.add_argument("pki_dir", type=Path, help="the development PKI (keys/dev)")
    parser.add_argument("command", nargs="?", default="setup", choices=("setup", "totp"))
    parser.add_argument("username", nargs="?", help="totp: whose code")
    parser.add_argument("--port", type=int, default=9790)
    args = parser.parse_args(argv)
    if args.command == "totp":
        import pyotp

        secret = read_env(args.pki_dir / "remote" / "secrets.env").get(totp_env(args.username or ""))
        if not secret:
            print(f"{args.username} has no one-time codes; run the set-up first", file=sys.stderr)
            return 1
        print(pyotp.TOTP(secret).now())
        return 0
    config, actions = set_up(args.pki_dir, args.port)
    changed = [a for a in actions if not a.startswith("kept ") and not a.startswith("credentials:")]
    for line in changed:
        print(line)
    print(f"esign-remote: {config} ({actions[-1]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
