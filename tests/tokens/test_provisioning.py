"""keys/tokens.py: SoftHSM2 tokens from the development PKI, created only where missing."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

from tests.tokens.conftest import MODULE, PIN


def _slots(setup: Any) -> list[tuple[str, str]]:
    """(label, serial) of every initialised token, read by softhsm2-util."""
    out = subprocess.run(
        ["softhsm2-util", "--show-slots"],
        env=setup.env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found, serial = [], ""
    for line in out.splitlines():
        key, _, value = line.strip().partition(":")
        if key == "Serial number":
            serial = value.strip()
        elif key == "Label" and value.strip():
            found.append((value.strip(), serial))
    return sorted(found)


def _objects(setup: Any, token: str) -> list[str]:
    """The object listing of a token, read by OpenSC's pkcs11-tool (an independent reader)."""
    out = subprocess.run(
        [
            "pkcs11-tool",
            "--module",
            MODULE,
            "--token-label",
            token,
            "--login",
            "--pin",
            PIN,
            "--list-objects",
        ],
        env=setup.env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sorted(
        line.strip()
        for line in out.splitlines()
        if line.strip().startswith(("label:", "Private Key", "Certificate"))
    )


def test_provisioning_twice_gives_the_same_tokens_and_objects(
    dev_pki: Path, tokens_module: ModuleType, tmp_path: Path
) -> None:
    first = tokens_module.provision_tokens(dev_pki, tmp_path, ["nguyenvana"])
    slots, objects = _slots(first), _objects(first, "nguyenvana")
    second = tokens_module.provision_tokens(dev_pki, tmp_path, ["nguyenvana"])

    assert [label for label, _ in slots] == ["agency-seal", "nguyenvana"]
    assert _slots(second) == slots  # same serials: nothing was re-initialised
    assert _objects(second, "nguyenvana") == objects
    assert "created token nguyenvana" in first.actions
    assert "imported nguyenvana/nguyenvana-token" in first.actions
    assert set(second.actions) == {
        "kept nguyenvana/nguyenvana-token",
        "kept agency-seal/agency-seal",
    }
    # the key, its certificate and the CA certificates, each once
    assert objects.count("label:      nguyenvana-token") == 2
    assert sum(line.startswith("Private Key") for line in objects) == 1
    assert sum(line.startswith("Certificate") for line in objects) == 3


def test_provisioning_uses_its_own_softhsm_configuration(
    dev_pki: Path, tokens_module: ModuleType, tmp_path: Path
) -> None:
    setup = tokens_module.provision_tokens(dev_pki, tmp_path / "hsm", ["tranthibinh"])
    conf = setup.conf.read_text()
    assert f"directories.tokendir = {(tmp_path / 'hsm' / 'tokens').resolve()}" in conf
    assert "/var/lib/softhsm" not in conf
    assert setup.env({})["SOFTHSM2_CONF"] == str(setup.conf)
    assert setup.tokens == {"tranthibinh": ("tranthibinh-token",), "agency-seal": ("agency-seal",)}


def test_provisioning_replaces_a_half_written_credential(
    dev_pki: Path, tokens_module: ModuleType, tmp_path: Path
) -> None:
    setup = tokens_module.provision_tokens(dev_pki, tmp_path, ["nguyenvana"])
    # an interrupted run: the certificate is gone, the key is left
    subprocess.run(
        [
            "pkcs11-tool",
            "--module",
            MODULE,
            "--token-label",
            "nguyenvana",
            "--login",
            "--pin",
            PIN,
            "--delete-object",
            "--type",
            "cert",
            "--label",
            "nguyenvana-token",
        ],
        env=setup.env(),
        capture_output=True,
        check=True,
    )
    again = tokens_module.provision_tokens(dev_pki, tmp_path, ["nguyenvana"])
    assert "imported nguyenvana/nguyenvana-token" in again.actions
    objects = _objects(again, "nguyenvana")
    assert sum(line.startswith("Private Key") for line in objects) == 1
    assert objects.count("label:      nguyenvana-token") == 2
