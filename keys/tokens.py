"""Provision SoftHSM2 tokens from the development PKI (development and demo only).

Usage::

    .venv/bin/python keys/tokens.py keys/dev [--softhsm keys/dev/softhsm]

SoftHSM2 stands in for the officers' USB tokens and for the agency's HSM. This
script gives it its own configuration and token folder (never the system
default in /var/lib/softhsm)::

    SOFTHSMDIR/softhsm2.conf     point SOFTHSM2_CONF here before loading the module
    SOFTHSMDIR/tokens/           one folder per token

and creates, only where missing:

- one token per demo officer who has a ``token`` device in ``keys/people.toml``:
  token label = username, holding the key and certificate ``<username>-token``;
- the token ``agency-seal`` with the key and certificate ``agency-seal``;
- on every token, the CA certificates of the PKCS#12 file (the chain).

The private keys are *imported* from the development PKCS#12 files
(``keys/make_dev_pki.py``). That is only acceptable for development: real
tokens generate their keys on the device and never let them out.

Every token has the user PIN ``123456`` and the SO PIN ``12345678``
(:data:`DEV_USER_PIN`, :data:`DEV_SO_PIN`): development defaults, printed here
on purpose. Running the script again changes nothing; if the PKI was
regenerated, the objects whose certificate changed are replaced.

Tests call :func:`provision_tokens` with a temporary folder.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
#: development defaults; a real token's PIN is chosen by its officer
DEV_USER_PIN = "123456"
DEV_SO_PIN = "12345678"
PASSPHRASE_ENV = "ESIGN_SOFTKEY_PASSPHRASE"
DEFAULT_PASSPHRASE = "esign-dev"
SEAL_TOKEN = "agency-seal"


@dataclass(frozen=True)
class TokenSetup:
    """Where the provisioned tokens live and what is on them."""

    conf: Path
    module: str
    #: token label -> credential (key and certificate) labels on it
    tokens: dict[str, tuple[str, ...]]
    #: what this run did, one line per action ("created token x", "kept x/y", ...)
    actions: tuple[str, ...] = field(default=())

    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """An environment for child processes that use these tokens."""
        out = dict(os.environ if base is None else base)
        out["SOFTHSM2_CONF"] = str(self.conf)
        return out


def plan(
    pki_dir: Path,
    people: Iterable[str] | None = None,
    extra_credentials: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, tuple[str, ...]]:
    """Token label -> credentials to put on it.

    ``people`` are usernames; ``None`` means every person of ``people.json``
    with a token certificate. The agency seal token is always included.
    ``extra_credentials`` adds credentials to a token (tests use it to put an
    ECDSA key on a token).
    """
    description = json.loads((Path(pki_dir) / "people.json").read_text(encoding="utf-8"))
    with_token = {
        p["username"]
        for p in description["people"]
        if f"{p['username']}-token" in p.get("credentials", [])
    }
    wanted = sorted(with_token) if people is None else list(people)
    tokens: dict[str, list[str]] = {}
    for username in wanted:
        if username not in with_token:
            raise SystemExit(f"{username} has no token certificate in {pki_dir}/people.json")
        tokens[username] = [f"{username}-token"]
    seal = description.get("agency", {}).get("credential", SEAL_TOKEN)
    tokens[seal] = [seal]
    for label, credentials in (extra_credentials or {}).items():
        tokens.setdefault(label, [])
        tokens[label] += [c for c in credentials if c not in tokens[label]]
    return {label: tuple(creds) for label, creds in tokens.items()}


def _write_conf(softhsm_dir: Path) -> Path:
    tokendir = (softhsm_dir / "tokens").resolve()
    tokendir.mkdir(parents=True, exist_ok=True)
    tokendir.chmod(0o700)
    conf = softhsm_dir.resolve() / "softhsm2.conf"
    text = (
        "# Written by keys/tokens.py: development tokens only.\n"
        f"directories.tokendir = {tokendir}\n"
        "objectstore.backend = file\n"
        "log.level = ERROR\n"
        "slots.removable = false\n"
        "slots.mechanisms = ALL\n"
        "library.reset_on_fork = false\n"
    )
    if not conf.exists() or conf.read_text(encoding="utf-8") != text:
        conf.write_text(text, encoding="utf-8")
    return conf


def _existing_tokens(env: Mapping[str, str]) -> set[str]:
    out = subprocess.run(
        ["softhsm2-util", "--show-slots"], env=dict(env), capture_output=True, text=True, check=True
    ).stdout
    labels = set()
    for line in out.splitlines():
        key, _, value = line.strip().partition(":")
        if key == "Label" and value.strip():
            labels.add(value.strip())
    return labels


def provision_tokens(
    pki_dir: Path | str,
    softhsm_conf_dir: Path | str,
    people: Iterable[str] | None = None,
    *,
    extra_credentials: Mapping[str, Sequence[str]] | None = None,
    module: str = DEFAULT_MODULE,
    user_pin: str = DEV_USER_PIN,
    so_pin: str = DEV_SO_PIN,
) -> TokenSetup:
    """Create the development tokens in ``softhsm_conf_dir`` where missing.

    Idempotent: a token is initialised only if no token has its label, and an
    object is imported only if it is missing or its certificate changed.
    Returns the configuration to point ``SOFTHSM2_CONF`` at.
    """
    pki_dir = Path(pki_dir).resolve()
    softhsm_dir = Path(softhsm_conf_dir)
    softhsm_dir.mkdir(parents=True, exist_ok=True)
    conf = _write_conf(softhsm_dir)
    tokens = plan(pki_dir, people, extra_credentials)
    env = dict(os.environ, SOFTHSM2_CONF=str(conf))
    actions: list[str] = []

    existing = _existing_tokens(env)
    for label in tokens:
        if label in existing:
            continue
        # the PINs are development defaults (documented above); a command line is fine here
        subprocess.run(
            [
                "softhsm2-util",
                "--init-token",
                "--free",
                "--label",
                label,
                "--pin",
                user_pin,
                "--so-pin",
                so_pin,
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        actions.append(f"created token {label}")

    # Objects are written by a child process: SoftHSM reads its configuration and
    # the list of tokens once, when the module is initialised, so a process that
    # already loaded it (a test run, a server) would not see the new tokens.
    # Secrets go through stdin, never the command line.
    job = {
        "module": module,
        "pin": user_pin,
        "passphrase": os.environ.get(PASSPHRASE_ENV) or DEFAULT_PASSPHRASE,
        "tokens": {
            label: [str(pki_dir / f"{c}.p12") for c in creds] for label, creds in tokens.items()
        },
    }
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "_import"],
        check=False,
        input=json.dumps(job),
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"importing keys into the tokens failed:\n{done.stderr.strip()}")
    actions += json.loads(done.stdout)
    return TokenSetup(conf=conf, module=module, tokens=tokens, actions=tuple(actions))


# --- the child process: python-pkcs11 writes the objects ----------------------------


def _import_objects(job: dict[str, Any]) -> list[str]:
    import pkcs11
    from asn1crypto import x509 as asn1_x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.serialization import pkcs12
    from pkcs11 import Attribute, ObjectClass
    from pkcs11.util.ec import decode_ec_private_key
    from pkcs11.util.rsa import decode_rsa_private_key
    from pkcs11.util.x509 import decode_x509_certificate

    lib = pkcs11.lib(job["module"])
    secret = job["passphrase"].encode("utf-8")
    actions = []

    def cert_template(der: bytes, label: str, obj_id: bytes) -> dict[Any, Any]:
        template = decode_x509_certificate(der)
        template.update(
            {
                Attribute.LABEL: label,
                Attribute.ID: obj_id,
                Attribute.TOKEN: True,
                Attribute.PRIVATE: False,
                # python-pkcs11 cannot write CKA_CERTIFICATE_CATEGORY; readers tell a CA
                # certificate by its basic constraints instead
            }
        )
        return template

    for token_label, p12_paths in job["tokens"].items():
        token = lib.get_token(token_label=token_label)
        with token.open(rw=True, user_pin=job["pin"]) as session:
            for p12_path in p12_paths:
                path = Path(p12_path)
                label = path.stem
                key, cert, extra = pkcs12.load_key_and_certificates(path.read_bytes(), secret)
                assert key is not None and cert is not None, f"{path} holds no key"
                cert_der = cert.public_bytes(serialization.Encoding.DER)
                spki = asn1_x509.Certificate.load(cert_der).public_key
                # the usual convention: CKA_ID = SHA-1 of the public key, on key and certificate
                obj_id = hashlib.sha1(spki["public_key"].contents).digest()

                certs = list(
                    session.get_objects(
                        {Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.LABEL: label}
                    )
                )
                keys = list(
                    session.get_objects(
                        {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.LABEL: label}
                    )
                )
                if (
                    len(certs) == 1
                    and len(keys) == 1
                    and certs[0][Attribute.VALUE] == cert_der
                    and keys[0][Attribute.ID] == obj_id
                ):
                    actions.append(f"kept {token_label}/{label}")
                else:
                    for obj in certs + keys:
                        obj.destroy()
                    if isinstance(key, rsa.RSAPrivateKey):
                        key_der = key.private_bytes(
                            serialization.Encoding.DER,
                            serialization.PrivateFormat.TraditionalOpenSSL,  # PKCS#1
                            serialization.NoEncryption(),
                        )
                        template = decode_rsa_private_key(key_der)
                    elif isinstance(key, ec.EllipticCurvePrivateKey):
                        key_der = key.private_bytes(
                            serialization.Encoding.DER,
                            serialization.PrivateFormat.TraditionalOpenSSL,  # SEC 1
                            serialization.NoEncryption(),
                        )
                        template = decode_ec_private_key(key_der)
                    else:
                        raise SystemExit(f"{path}: unsupported key type")
                    template.update(
                        {
                            Attribute.LABEL: label,
                            Attribute.ID: obj_id,
                            Attribute.TOKEN: True,
                            Attribute.PRIVATE: True,
                            Attribute.SENSITIVE: True,
                            Attribute.EXTRACTABLE: False,
                            Attribute.SIGN: True,
                            Attribute.DECRYPT: False,
                            Attribute.UNWRAP: False,
                        }
                    )
                    session.create_object(template)
                    session.create_object(cert_template(cert_der, label, obj_id))
                    actions.append(f"imported {token_label}/{label}")

                for ca in extra:
                    ca_der = ca.public_bytes(serialization.Encoding.DER)
                    known = [
                        o
                        for o in session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE})
                        if o[Attribute.VALUE] == ca_der
                    ]
                    if known:
                        continue
                    ca_cert = asn1_x509.Certificate.load(ca_der)
                    ca_label = ca_cert.subject.native.get("common_name") or ca_cert.sha1.hex()
                    session.create_object(cert_template(ca_der, ca_label, ca_cert.sha1[:8]))
                    actions.append(f"added CA certificate {ca_label!r} to {token_label}")
    return actions


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_import"]:
        print(json.dumps(_import_objects(json.load(sys.stdin))))
        return 0
    parser = argparse.ArgumentParser(
        description="Create SoftHSM2 tokens from the development PKI (development only)."
    )
    parser.add_argument("pki_dir", type=Path, help="the development PKI (keys/dev)")
    parser.add_argument(
        "--softhsm",
        type=Path,
        default=None,
        help="folder of the SoftHSM configuration and tokens (default: PKI_DIR/softhsm)",
    )
    parser.add_argument("--module", default=DEFAULT_MODULE, help="the SoftHSM2 PKCS#11 module")
    parser.add_argument(
        "--person",
        action="append",
        default=None,
        help="only this username's token (repeatable; default: every person with a token)",
    )
    args = parser.parse_args(argv)
    setup = provision_tokens(
        args.pki_dir, args.softhsm or args.pki_dir / "softhsm", args.person, module=args.module
    )
    for line in setup.actions:
        print(line)
    print(f"tokens ready: {', '.join(setup.tokens)}")
    print(f"use them with: export SOFTHSM2_CONF={setup.conf}")
    print(f"development PINs: user {DEV_USER_PIN}, SO {DEV_SO_PIN} (development only)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
