"""Fixtures of the token tests: real SoftHSM2 tokens provisioned from the development PKI,
and esign-agent started as a real process. No mocks."""

from __future__ import annotations

import hashlib
import http.client
import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from asn1crypto import cms

ROOT = Path(__file__).resolve().parents[2]
MODULE = "/usr/lib/softhsm/libsofthsm2.so"
ORIGIN = "http://127.0.0.1:5000"
PIN = "123456"


def load_tokens_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("esign_keys_tokens", ROOT / "keys" / "tokens.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def tokens_module() -> ModuleType:
    if not Path(MODULE).exists():
        pytest.fail(f"SoftHSM2 is not installed ({MODULE}); apt-get install softhsm2")
    return load_tokens_module()


@pytest.fixture(scope="session")
def tokens(
    dev_pki: Path, tokens_module: ModuleType, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """Tokens for two officers and the seal; nguyenvana's also holds an ECDSA key.

    SoftHSM reads SOFTHSM2_CONF when this process first loads it, so the
    variable is set for the whole session (and put back afterwards).
    """
    setup = tokens_module.provision_tokens(
        dev_pki,
        tmp_path_factory.mktemp("softhsm"),
        ["nguyenvana", "tranthibinh"],
        extra_credentials={"nguyenvana": ["nguyenvana-mobile"]},
    )
    before = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(setup.conf)
    yield setup
    if before is None:
        os.environ.pop("SOFTHSM2_CONF", None)
    else:
        os.environ["SOFTHSM2_CONF"] = before


def signed_attributes(payload: bytes = b"a PDF byte range") -> bytes:
    """DER of CMS signed attributes, as prepare_signature makes them."""
    return cms.CMSAttributes(
        [
            cms.CMSAttribute({"type": "content_type", "values": ["data"]}),
            cms.CMSAttribute(
                {"type": "message_digest", "values": [hashlib.sha256(payload).digest()]}
            ),
            cms.CMSAttribute(
                {
                    "type": "signing_time",
                    "values": [cms.Time({"utc_time": datetime(2026, 3, 2, 3, 0, tzinfo=UTC)})],
                }
            ),
        ]
    ).dump()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class AgentProcess:
    port: int
    process: subprocess.Popen[str]

    def request(
        self,
        method: str,
        path: str,
        body: bytes | dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        sent = dict(headers or {})
        data: bytes | None
        if isinstance(body, dict):
            data = json.dumps(body).encode()
            sent.setdefault("Content-Type", "application/json")
        else:
            data = body
        try:
            conn.request(method, path, body=data, headers=sent)
            response = conn.getresponse()
            raw = response.read()
            got = {k.lower(): v for k, v in response.getheaders()}
        finally:
            conn.close()
        payload = (
            json.loads(raw)
            if raw and got.get("content-type", "").startswith("application/json")
            else None
        )
        return response.status, got, payload


def start_agent(setup: Any, token: str, pin: str, tmp_path: Path) -> AgentProcess:
    port = free_port()
    env = setup.env()
    env["TEST_AGENT_PIN"] = pin
    log_path = tmp_path / f"agent-{token}-{port}.log"
    with log_path.open("w") as log:  # the child keeps its own descriptor
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "esign.agent",
                "--module",
                setup.module,
                "--token",
                token,
                "--origin",
                ORIGIN,
                "--port",
                str(port),
                "--pin-env",
                "TEST_AGENT_PIN",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
        )
    agent = AgentProcess(port, process)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"esign-agent exited: {log_path.read_text()}")
        try:
            status, _, _ = agent.request("GET", "/status")
            if status == 200:
                return agent
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise AssertionError("esign-agent did not start within 15 s")


def stop_agent(agent: AgentProcess) -> None:
    agent.process.terminate()
    try:
        agent.process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        agent.process.kill()
        agent.process.wait()


@pytest.fixture(scope="module")
def agent(tokens: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    """esign-agent on nguyenvana's token, with the right PIN."""
    running = start_agent(tokens, "nguyenvana", PIN, tmp_path_factory.mktemp("agent"))
    yield running
    stop_agent(running)
