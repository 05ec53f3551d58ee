"""Create the development PKI (development and demo only; never for real documents).

Usage::

    .venv/bin/python keys/make_dev_pki.py keys/dev [--port 9780]

What it writes into OUTDIR:

- ``keys/*.key.pem``: private keys, generated only where missing (RSA 2048 for
  CAs, services, tokens and the seal; ECDSA P-256 for mobile certificates);
- ``certomancer.yml``: the certomancer architecture ``esign`` (serve its OCSP
  responders, CRLs and TSA with ``certomancer --config OUTDIR/certomancer.yml
  animate --port PORT``; the URLs in the certificates use that port);
- ``root.cert.pem`` (the root standing in for the national root),
  ``gov-ca.cert.pem`` (government specialised CA: token certificates),
  ``public-ca.cert.pem`` (public CA: mobile certificates), ``tsa.cert.pem``,
  ``gov-ocsp.cert.pem``, ``public-ocsp.cert.pem``;
- for every signer ``<name>.cert.pem`` and ``<name>.p12`` (key, certificate and
  chain), where name is ``<username>-token``, ``<username>-mobile`` or
  ``agency-seal``. Every PKCS#12 file has the same development passphrase:
  the environment variable ESIGN_SOFTKEY_PASSPHRASE, default ``esign-dev``;
- ``revoked-token.cert.pem`` and ``revoked-token.p12``: a token certificate of
  the government specialised CA that its OCSP responder and CRL report as
  revoked (key compromise), so that refusing a revoked certificate can be
  tried; it belongs to no demo person;
- ``people.json``: the demo people of ``keys/people.toml`` with their
  credential names.

Running it again changes nothing: keys are reused, serial numbers and validity
dates are fixed, so the certificates come out byte-identical, and a file is
only rewritten when its content would differ.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tomllib
from pathlib import Path
from typing import Any

import yaml
from asn1crypto import pem as asn1_pem
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

HERE = Path(__file__).resolve().parent
DEFAULT_PEOPLE = HERE / "people.toml"
DEFAULT_PORT = 9780
PASSPHRASE_ENV = "ESIGN_SOFTKEY_PASSPHRASE"
DEFAULT_PASSPHRASE = "esign-dev"
ARCH = "esign"
DEVICE_CA = {"token": "gov-ca", "mobile": "public-ca"}
# mobile certificates use ECDSA so that both signature mechanisms get exercised
DEVICE_KEY = {"token": "rsa", "mobile": "ec", "seal": "rsa"}
CA_FILES = ("root", "gov-ca", "public-ca", "tsa", "gov-ocsp", "public-ocsp")

ROOT_VALIDITY = {"valid-from": "2024-01-01T00:00:00+0000", "valid-to": "2044-01-01T00:00:00+0000"}
CA_VALIDITY = {"valid-from": "2024-01-01T00:00:00+0000", "valid-to": "2039-01-01T00:00:00+0000"}
SERVICE_VALIDITY = {
    "valid-from": "2024-01-01T00:00:00+0000",
    "valid-to": "2034-01-01T00:00:00+0000",
}
SIGNER_VALIDITY = {"valid-from": "2025-01-01T00:00:00+0000", "valid-to": "2030-01-01T00:00:00+0000"}
DEV_ORG = "esign development PKI"
#: a token certificate reported revoked by the OCSP responder and the CRL (tests and demo)
REVOKED = "revoked-token"
REVOKED_SINCE = "2025-06-01T00:00:00+0000"


def passphrase() -> str:
    """The development passphrase of every PKCS#12 file."""
    return os.environ.get(PASSPHRASE_ENV) or DEFAULT_PASSPHRASE


def _write_if_changed(path: Path, data: bytes, mode: int | None = None) -> bool:
    if path.exists() and path.read_bytes() == data:
        return False
    path.write_bytes(data)
    if mode is not None:
        path.chmod(mode)
    return True


def _ensure_key(path: Path, kind: str) -> None:
    if path.exists():
        return
    key: Any
    if kind == "ec":
        key = ec.generate_private_key(ec.SECP256R1())
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.touch(mode=0o600)
    path.write_bytes(data)


def _key_usage(*usages: str) -> dict[str, Any]:
    return {
        "id": "key_usage",
        "critical": True,
        "smart-value": {"schema": "key-usage", "params": list(usages)},
    }


def _crl_dp(repo: str) -> dict[str, Any]:
    return {
        "id": "crl_distribution_points",
        "smart-value": {"schema": "crl-dist-url", "params": {"crl-repo-names": [repo]}},
    }


def _aia_ocsp(responder: str) -> dict[str, Any]:
    return {
        "id": "authority_information_access",
        "smart-value": {"schema": "aia-urls", "params": {"ocsp-responder-names": [responder]}},
    }


def load_people(path: Path) -> dict[str, Any]:
    with path.open("rb") as f:
        return tomllib.load(f)


def signers(people: dict[str, Any]) -> list[dict[str, Any]]:
    """Every credential to issue: name, device, key kind, entity attributes."""
    agency = people["agency"]
    out = []
    for person in people.get("people", []):
        for device in person.get("devices", []):
            if device not in DEVICE_CA:
                raise SystemExit(
                    f"{person['username']}: unknown device {device!r} (token or mobile)"
                )
            out.append(
                {
                    "name": f"{person['username']}-{device}",
                    "device": device,
                    "issuer": DEVICE_CA[device],
                    "entity": {
                        "common-name": person["full_name"],
                        "title": person.get("title", ""),
                        "organization-name": agency["name"],
                        "locality-name": agency.get("locality", ""),
                        "country-name": "VN",
                    },
                }
            )
    out.append(
        {
            "name": agency["credential"],
            "device": "seal",
            "issuer": "gov-ca",
            "entity": {
                "common-name": agency["name"],
                "organization-name": agency["name"],
                "locality-name": agency.get("locality", ""),
                "country-name": "VN",
            },
        }
    )
    # last, so that the serial numbers of the people and the seal do not move
    out.append(
        {
            "name": REVOKED,
            "device": "token",
            "issuer": "gov-ca",
            "entity": {
                "common-name": "Chứng thư thử nghiệm đã thu hồi",
                "organization-name": agency["name"],
                "locality-name": agency.get("locality", ""),
                "country-name": "VN",
            },
            "revocation": {"revoked-since": REVOKED_SINCE, "reason": "key_compromise"},
        }
    )
    return out


def architecture(people: dict[str, Any], port: int) -> dict[str, Any]:
    """The certomancer configuration (keys under ``keys/`` next to it)."""
    issued = signers(people)
    key_labels = list(CA_FILES) + [s["name"] for s in issued]
    entities: dict[str, Any] = {
        "root": {
            "common-name": "Root CA (dev) standing in for the national root",
            "organization-name": DEV_ORG,
            "country-name": "VN",
        },
        "gov-ca": {
            "common-name": "Government specialised CA (dev)",
            "organization-name": DEV_ORG,
            "country-name": "VN",
        },
        "public-ca": {
            "common-name": "Public CA for mobile certificates (dev)",
            "organization-name": DEV_ORG,
            "country-name": "VN",
        },
        "tsa": {
            "common-name": "Time stamping authority (dev)",
            "organization-name": DEV_ORG,
            "country-name": "VN",
        },
        "gov-ocsp": {
            "common-name": "OCSP responder, government specialised CA (dev)",
            "organization-name": DEV_ORG,
            "country-name": "VN",
        },
        "public-ocsp": {
            "common-name": "OCSP responder, public CA (dev)",
            "organization-name": DEV_ORG,
            "country-name": "VN",
        },
    }
    for s in issued:
        entities[s["name"]] = {k: v for k, v in s["entity"].items() if v}

    ca_exts = [
        {
            "id": "basic_constraints",
            "critical": True,
            "value": {"ca": True, "path-len-constraint": 0},
        },
        _key_usage("digital_signature", "key_cert_sign", "crl_sign"),
        _crl_dp("root"),
    ]
    certs: dict[str, Any] = {
        "root": {
            "subject": "root",
            "subject-key": "root",
            "issuer": "root",
            "authority-key": "root",
            "serial": 1,
            "validity": ROOT_VALIDITY,
            "extensions": [
                {"id": "basic_constraints", "critical": True, "value": {"ca": True}},
                _key_usage("digital_signature", "key_cert_sign", "crl_sign"),
            ],
        },
        "gov-ca": {
            "subject": "gov-ca",
            "issuer": "root",
            "serial": 2,
            "validity": CA_VALIDITY,
            "extensions": ca_exts,
        },
        "public-ca": {
            "subject": "public-ca",
            "issuer": "root",
            "serial": 3,
            "validity": CA_VALIDITY,
            "extensions": ca_exts,
        },
        "tsa": {
            "subject": "tsa",
            "issuer": "root",
            "serial": 4,
            "validity": SERVICE_VALIDITY,
            "extensions": [
                _key_usage("digital_signature"),
                {"id": "extended_key_usage", "critical": True, "value": ["time_stamping"]},
                _crl_dp("root"),
            ],
        },
    }
    for ca in ("gov", "public"):
        certs[f"{ca}-ocsp"] = {
            "subject": f"{ca}-ocsp",
            "issuer": f"{ca}-ca",
            "serial": 2,
            "validity": SERVICE_VALIDITY,
            "extensions": [
                _key_usage("digital_signature"),
                {"id": "extended_key_usage", "critical": True, "value": ["ocsp_signing"]},
                {"id": "ocsp_no_check"},
            ],
        }
    # serials per issuer are fixed by position: the order of people.toml decides them
    next_serial = {"gov-ca": 100, "public-ca": 100}
    for s in issued:
        issuer = s["issuer"]
        certs[s["name"]] = {
            "subject": s["name"],
            "issuer": issuer,
            "serial": next_serial[issuer],
            "validity": SIGNER_VALIDITY,
            "extensions": [
                _key_usage("digital_signature", "non_repudiation"),
                _crl_dp(issuer),
                _aia_ocsp(issuer),
            ],
        }
        if "revocation" in s:
            certs[s["name"]]["revocation"] = s["revocation"]
        next_serial[issuer] += 1

    return {
        "external-url-prefix": f"http://127.0.0.1:{port}",
        "keysets": {
            ARCH: {
                "path-prefix": "keys",
                "keys": {label: {"path": f"{label}.key.pem"} for label in key_labels},
            }
        },
        "pki-architectures": {
            ARCH: {
                "keyset": ARCH,
                "entities": entities,
                "certs": certs,
                "services": {
                    "ocsp": {
                        "gov-ca": {
                            "for-issuer": "gov-ca",
                            "responder-cert": "gov-ocsp",
                            "signing-key": "gov-ocsp",
                        },
                        "public-ca": {
                            "for-issuer": "public-ca",
                            "responder-cert": "public-ocsp",
                            "signing-key": "public-ocsp",
                        },
                    },
                    "crl-repo": {
                        "root": {
                            "for-issuer": "root",
                            "signing-key": "root",
                            "simulated-update-schedule": "P90D",
                        },
                        "gov-ca": {
                            "for-issuer": "gov-ca",
                            "signing-key": "gov-ca",
                            "simulated-update-schedule": "P7D",
                        },
                        "public-ca": {
                            "for-issuer": "public-ca",
                            "signing-key": "public-ca",
                            "simulated-update-schedule": "P7D",
                        },
                    },
                    "cert-repo": {
                        "root": {"for-issuer": "root", "publish-issued-certs": True},
                        "gov-ca": {"for-issuer": "gov-ca", "publish-issued-certs": False},
                        "public-ca": {"for-issuer": "public-ca", "publish-issued-certs": False},
                    },
                    "time-stamping": {"tsa": {"signing-key": "tsa", "signing-cert": "tsa"}},
                },
            }
        },
    }


def _p12_matches(path: Path, cert_der: bytes, key_der: bytes, secret: bytes) -> bool:
    if not path.exists():
        return False
    try:
        key, cert, _ = pkcs12.load_key_and_certificates(path.read_bytes(), secret)
    except ValueError:
        return False  # another passphrase, or damaged: write it again
    if key is None or cert is None:
        return False
    return (
        cert.public_bytes(serialization.Encoding.DER) == cert_der
        and key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        == key_der
    )


def make_dev_pki(
    outdir: Path | str, port: int = DEFAULT_PORT, people_file: Path | None = None
) -> Path:
    """Create (or bring up to date) the development PKI in ``outdir``; returns ``outdir``."""
    from certomancer.registry import CertomancerConfig

    outdir = Path(outdir)
    keydir = outdir / "keys"
    keydir.mkdir(parents=True, exist_ok=True)
    people = load_people(people_file or DEFAULT_PEOPLE)
    issued = signers(people)

    for label in CA_FILES:
        _ensure_key(keydir / f"{label}.key.pem", "rsa")
    for s in issued:
        _ensure_key(keydir / f"{s['name']}.key.pem", DEVICE_KEY[s["device"]])

    config_path = outdir / "certomancer.yml"
    text = "# Generated by keys/make_dev_pki.py; edit keys/people.toml instead.\n" + yaml.safe_dump(
        architecture(people, port), allow_unicode=True, sort_keys=False
    )
    _write_if_changed(config_path, text.encode("utf-8"))

    arch = CertomancerConfig.from_file(str(config_path)).get_pki_arch(ARCH)

    def cert_pem(label: str) -> bytes:
        return asn1_pem.armor("CERTIFICATE", arch.get_cert(label).dump())

    for label in CA_FILES:
        _write_if_changed(outdir / f"{label}.cert.pem", cert_pem(label))

    secret = passphrase().encode("utf-8")
    for s in issued:
        name = s["name"]
        _write_if_changed(outdir / f"{name}.cert.pem", cert_pem(name))
        cert_der = arch.get_cert(name).dump()
        key_der = arch.key_set.get_private_key(name).dump()
        p12 = outdir / f"{name}.p12"
        if not _p12_matches(p12, cert_der, key_der, secret):
            # PKCS#12 encryption is salted: rewrite only when the content changed
            p12.write_bytes(arch.package_pkcs12(name, password=secret))
            p12.chmod(0o600)

    description = {
        "note": "Development PKI: never use these keys for real documents.",
        "passphrase_env": PASSPHRASE_ENV,
        "services": f"http://127.0.0.1:{port}/{ARCH}",
        "agency": {"name": people["agency"]["name"], "credential": people["agency"]["credential"]},
        "people": [
            {
                "username": p["username"],
                "full_name": p["full_name"],
                "title": p.get("title", ""),
                "role": p.get("role", ""),
                "roles": p.get("roles") or [p["role"]],
                "credentials": [f"{p['username']}-{d}" for d in p.get("devices", [])],
            }
            for p in people.get("people", [])
        ],
    }
    _write_if_changed(
        outdir / "people.json",
        (json.dumps(description, ensure_ascii=False, indent=2) + "\n").encode("utf-8"),
    )
    return outdir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Create the esign development PKI (development only)."
    )
    parser.add_argument(
        "outdir", type=Path, help="where keys, certificates and PKCS#12 files go (keys/dev)"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help="port of `certomancer animate` written into the certificates' URLs",
    )
    parser.add_argument(
        "--people", type=Path, default=DEFAULT_PEOPLE, help="the demo people (TOML)"
    )
    args = parser.parse_args(argv)
    out = make_dev_pki(args.outdir, args.port, args.people)
    print(
        f"development PKI ready in {out} (serve it: certomancer --config {out / 'certomancer.yml'} "
        f"animate --port {args.port})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
