"""The fault-injection hook kills only where asked, and never in production."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from esign.config import load_settings
from esign.errors import ConfigError
from esign.services import faults
from tests.conftest import ROOT


def test_production_refuses_to_start_with_a_fault_point() -> None:
    with pytest.raises(ConfigError, match="ESIGN_FAULT_POINT"):
        load_settings(ROOT / "config.toml", env={"ESIGN_FAULT_POINT": "signing.before_commit"},
                      overrides={"app": {"environment": "production"}})
    # development and test start with it (the crash tests need it)
    for environment in ("development", "test"):
        load_settings(ROOT / "config.toml", env={"ESIGN_FAULT_POINT": "signing.before_commit"},
                      overrides={"app": {"environment": environment}})


def test_a_production_process_survives_its_fault_point(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(ROOT / "config.toml", env={}).replace(app={"environment": "production"})
    assert settings.is_production
    monkeypatch.setenv(faults.ENV, "signing.before_commit")
    faults.point(settings, "signing.before_commit")  # inert: this test goes on
    monkeypatch.delenv(faults.ENV)


def _run(point: str, reached: str, environment: str) -> int:
    code = (
        "from esign.config import load_settings; from esign.services import faults; "
        f"s = load_settings({str(ROOT / 'config.toml')!r}, env={{}}, overrides={{'app': {{'environment': {environment!r}}}}}); "
        f"faults.point(s, {reached!r}); print('survived')"
    )
    env = {"ESIGN_FAULT_POINT": point, "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-c", code], check=False, env=env, capture_output=True,
                          timeout=120).returncode


def test_a_test_process_dies_at_its_point_and_only_there() -> None:
    assert _run("signing.before_commit", "signing.before_commit", "test") == -signal.SIGKILL
    assert _run("signing.before_commit", "signing.after_commit", "development") == 0
