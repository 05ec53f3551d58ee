"""``esign-remote``: serve the remote signing service with waitress.

Usage::

    esign-remote --config remote.toml [--host 127.0.0.1] [--port 9790]
    esign-remote --config remote.toml audit      # print the audit log and check its chain

Serve it behind a TLS-terminating proxy: phones reach the confirmation page
over the network, esign reaches the API.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from esign.errors import EsignError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="esign-remote", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="remote.toml", help="the service's TOML file")
    parser.add_argument("--host", default=None, help="address to listen on (default: the file's)")
    parser.add_argument("--port", type=int, default=None, help="port (default: the file's)")
    parser.add_argument("command", nargs="?", default="serve", choices=("serve", "audit"))
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    from esign.remote.app import create_remote_app
    from esign.remote.config import load_remote_config

    try:
        config = load_remote_config(args.config)
        app = create_remote_app(config)
    except EsignError as e:
        print(f"esign-remote: {e}", file=sys.stderr)
        return 2
    if args.command == "audit":
        service = app.extensions["esign_remote"]
        for record in service.store.audit_log():
            print(json.dumps(record, ensure_ascii=False))
        problems = service.store.check_audit()
        for problem in problems:
            print(f"esign-remote: {problem}", file=sys.stderr)
        return 1 if problems else 0

    import waitress

    host = args.host or config.host
    port = args.port or config.port
    logging.getLogger(__name__).info("esign-remote on http://%s:%d", host, port)
    waitress.serve(app, host=host, port=port, threads=config.threads, ident="esign-remote")
    return 0


if __name__ == "__main__":
    sys.exit(main())
