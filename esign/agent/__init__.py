"""esign-agent: the officer's USB token, reachable from the esign page in the browser.

Browsers cannot talk to PKCS#11, so the officer runs this small program on the
desktop. It listens on 127.0.0.1 only, lists the certificates on the token and
signs the tbs (DER of CMS signed attributes) that the esign page hands it; the
PIN is typed here, in the agent's terminal, and never leaves the desktop. It
answers only the esign origins it was started with.

Usage::

    esign-agent --origin https://esign.phuong.gov.vn \\
        [--module /usr/lib/softhsm/libsofthsm2.so] [--token LABEL] [--port 9796] \\
        [--chain ca.pem] [--pin-env VAR]

The default port is 9796 (9795 is NexU's, which an officer may also run). When
``--token`` is left out and exactly one token is plugged in, that one is used.
``--pin-env VAR`` takes the PIN from an environment variable instead of asking
(tests and kiosks). A wrong PIN is never tried twice: restart the agent to
type it again. ``python -m esign.agent`` runs the same program.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import signal
import sys
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
MODULE_ENV = "ESIGN_AGENT_MODULE"


def _origin(value: str) -> str:
    parts = urlsplit(value)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or parts.username
    ):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an origin: give scheme, host and port only, "
            "e.g. https://esign.example.gov.vn"
        )
    return f"{parts.scheme}://{parts.netloc}".lower()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from esign.agent.server import DEFAULT_PORT

    parser = argparse.ArgumentParser(
        prog="esign-agent",
        description="Sign esign documents with the USB token on this computer.",
    )
    parser.add_argument(
        "--origin",
        action="append",
        type=_origin,
        required=True,
        help="an esign address allowed to use the agent (repeatable), e.g. https://esign.example.gov.vn",
    )
    parser.add_argument(
        "--module",
        default=os.environ.get(MODULE_ENV) or DEFAULT_MODULE,
        help=f"the token's PKCS#11 library (default: ${MODULE_ENV} or {DEFAULT_MODULE})",
    )
    parser.add_argument("--token", help="the token's label (default: the only token plugged in)")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port on 127.0.0.1 (default {DEFAULT_PORT})"
    )
    parser.add_argument(
        "--chain",
        action="append",
        type=Path,
        default=[],
        help="PEM file of CA certificates above the officer's certificate (repeatable)",
    )
    parser.add_argument(
        "--pin-env",
        metavar="VAR",
        help="read the PIN from this environment variable instead of asking (tests, kiosks)",
    )
    parser.add_argument("--quiet", action="store_true", help="log only warnings")
    return parser.parse_args(argv)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Console script ``esign-agent``."""
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s esign-agent %(levelname)s %(message)s",
    )
    from esign.agent.server import Agent, AgentServer
    from esign.errors import EsignError, PinLocked, TokenUnavailable, WrongPin
    from esign.signing.pkcs11 import Pkcs11Backend, token_labels

    token = args.token
    if token is None:
        try:
            labels = token_labels(args.module)
        except EsignError as e:
            _say(f"esign-agent: {e}")
            return 2
        if len(labels) != 1:
            found = ", ".join(labels) or "none"
            _say(
                f"esign-agent: plug in your token, or name it with --token (tokens found: {found})."
            )
            return 2
        token = labels[0]

    backend = Pkcs11Backend(args.module, token, None, chain_pem=args.chain)

    if args.pin_env:
        pin = os.environ.get(args.pin_env) or None
        if pin is None:
            _say(f"esign-agent: the environment variable {args.pin_env} holds no PIN.")
            return 2
        agent = Agent(backend, args.origin, pin)
        try:
            agent.verify_pin()
        except (WrongPin, PinLocked) as e:
            # keep running: the esign page shows the sentence when the officer signs
            _say(f"esign-agent: {e}")
        except TokenUnavailable as e:
            _say(f"esign-agent: {e} The PIN will be checked at the first signature.")
    else:
        if not sys.stdin.isatty():
            _say("esign-agent: no terminal to ask the PIN on; use --pin-env VAR.")
            return 2
        agent = None
        for _ in range(3):
            pin = getpass.getpass(f"PIN của token {token} / PIN of token {token}: ") or None
            if pin is None:
                _say("esign-agent: no PIN typed; stopping.")
                return 2
            agent = Agent(backend, args.origin, pin)
            try:
                agent.verify_pin()
                break
            except WrongPin as e:
                _say(f"esign-agent: {e}")
                agent = None
            except PinLocked as e:
                _say(f"esign-agent: {e}")
                return 3
            except TokenUnavailable as e:
                _say(f"esign-agent: {e} The PIN will be checked at the first signature.")
                break
        if agent is None:
            return 3
        del pin

    try:
        server = AgentServer(agent, args.port)
    except OSError as e:
        _say(f"esign-agent: cannot listen on 127.0.0.1:{args.port} ({e.strerror}).")
        return 2

    def _stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    port = server.server_address[1]
    _say(
        f"esign-agent listening on http://127.0.0.1:{port} for token {token}; "
        f"origins: {', '.join(sorted(agent.origins))}. Ctrl+C stops it."
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    _say("esign-agent stopped.")
    return 0
