"""certomancer's OCSP responders, CRLs and TSA for the development PKI, on 127.0.0.1.

Development and tests only: production names real services by configuration
(``[pki] tsa_url``; OCSP and CRL addresses come from the certificates).
:class:`PkiServices` serves a ``certomancer.yml`` (written by
``keys/make_dev_pki.py``) with certomancer's WSGI app in a thread of this
process; ``esign pki-services`` runs it in the foreground.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from esign.errors import ConfigError

log = logging.getLogger(__name__)

ARCH = "esign"
HOST = "127.0.0.1"


def port_answers(port: int, host: str = HOST, timeout: float = 0.5) -> bool:
    """True when something accepts connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def bind(port: int) -> socket.socket:
    """A listening socket on 127.0.0.1:``port`` (0: a free port); OSError when the port is taken."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def tsa_url(port: int) -> str:
    """The development TSA's address for services on ``port``."""
    return f"http://{HOST}:{port}/{ARCH}/tsa/tsa"


class _Switchable:
    """A WSGI app that can be set after the socket is bound, and switched off (503)."""

    def __init__(self) -> None:
        self.app: Callable[..., Iterable[bytes]] | None = None
        self.available = True
        #: requests answered, by path (what a client asked of the CA, for tests and benches)
        self.answered: Counter[str] = Counter()

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        if self.app is None or not self.available:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"development PKI services are not available\n"]
        self.answered[environ.get("PATH_INFO", "")] += 1
        return self.app(environ, start_response)


class PkiServices:
    """OCSP, CRL and TSA of a development PKI, served by a thread of this process.

    The socket is bound at construction, before the PKI exists if need be:
    the certificates carry the port in their URLs, so a caller binds first
    (port 0 picks a free one), builds the PKI with :attr:`port`, then calls
    :meth:`load`.
    """

    def __init__(self, port: int = 0, config: Path | None = None) -> None:
        from werkzeug.serving import make_server

        self._app = _Switchable()
        # bound here, not by werkzeug, which exits the process when the port is taken
        sock = bind(port)
        try:
            self.server = make_server(HOST, port, self._app, threaded=True, fd=sock.fileno())
        finally:
            sock.close()  # werkzeug holds a duplicate
        self.port = int(self.server.socket.getsockname()[1])
        self.thread = threading.Thread(
            target=self.server.serve_forever, name="pki-services", daemon=True
        )
        self.thread.start()
        if config is not None:
            self.load(config)

    @property
    def tsa_url(self) -> str:
        return tsa_url(self.port)

    def answered(self, suffix: str) -> int:
        """How many requests for paths ending in ``suffix`` were answered so far."""
        return sum(n for path, n in self._app.answered.items() if path.endswith(suffix))

    def load(self, config: Path) -> None:
        """Serve the architecture of ``config`` (a certomancer.yml)."""
        self._app.app = animator(config)

    @contextmanager
    def stopped(self) -> Iterator[None]:
        """Answer 503 to everything for the duration (as if the services were down)."""
        self._app.available = False
        try:
            yield
        finally:
            self._app.available = True

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def animator(config: Path) -> Callable[..., Iterable[bytes]]:
    """certomancer's WSGI app (services only, no web UI) for ``config``."""
    from certomancer.integrations.animator import Animator, AnimatorArchStore
    from certomancer.registry import CertomancerConfig

    if not Path(config).is_file():
        raise ConfigError(
            "%(config)s does not exist; create the development PKI first (make pki)",
            config=str(config),
        )
    arch = CertomancerConfig.from_file(str(config)).get_pki_arch(ARCH)
    # allow_time_override off: a client must not choose the time a timestamp states
    return Animator(AnimatorArchStore({ARCH: arch}), with_web_ui=False, allow_time_override=False)


def serve_forever(config: Path, port: int) -> None:
    """Serve ``config`` on 127.0.0.1:``port`` until interrupted (``esign pki-services``)."""
    from werkzeug.serving import make_server

    server = make_server(HOST, port, animator(config), threaded=True)
    log.info("development PKI services on http://%s:%s/%s", HOST, port, ARCH)
    try:
        server.serve_forever()
    finally:
        server.server_close()
