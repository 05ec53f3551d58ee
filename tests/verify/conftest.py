"""A real signed chain (development PKI, certomancer's OCSP/CRL/TSA on 127.0.0.1), built once."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from types import ModuleType

import pytest

from tests.verify import chain as chain_mod

ROOT = Path(__file__).resolve().parents[2]


def _pki_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_dev_pki", ROOT / "keys" / "make_dev_pki.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    port = chain_mod.free_port()
    out = tmp_path_factory.mktemp("verify-pki")
    _pki_module().make_dev_pki(out, port=port)
    return out, port


@pytest.fixture(scope="session")
def chain(pki_dir: tuple[Path, int]) -> chain_mod.Chain:
    out, port = pki_dir
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    services = chain_mod.PkiServices(out, port)
    try:
        return chain_mod.build_chain(out, services.tsa_url)
    finally:
        services.close()  # verification runs offline: everything it needs is embedded


@pytest.fixture(scope="session")
def trust(chain: chain_mod.Chain):  # type: ignore[no-untyped-def]
    from esign.verify import TrustStore

    return TrustStore.from_pem_files([chain.root])
