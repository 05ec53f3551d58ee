"""The HTTP server of ``esign serve``: one process with threads, or several processes.

A signing step is CPU work in Python (hashing, pyHanko's incremental writer);
while one thread signs, the other threads of its process wait for the
interpreter lock between their database round trips, so a page that makes
twenty queries takes far longer than its own work. Several processes keep
page loads fast while chairs sign: ``[server] workers`` processes (gunicorn's
threaded workers, each with ``[server] threads`` threads, the app built in each
process after the fork so that no database connection or token session is
shared), or with ``workers = 1`` a single waitress process, which stops when
it is killed, as the crash tests expect.
"""

from __future__ import annotations

import gc
import os
import secrets
from collections.abc import Callable
from typing import Any

from gunicorn.app.base import BaseApplication

from esign.config import Settings


def serve(settings: Settings, host: str, port: int, *, quiet: bool = False,
          on_start: Callable[[str], None] | None = None) -> None:
    """Serve the app on ``host:port`` until stopped (SIGTERM or SIGINT)."""
    server = settings.server
    url = f"http://{host}:{port}/"
    if server.workers <= 1:
        from waitress import serve as waitress_serve

        app = _ready_app(settings)
        if on_start:
            on_start(url)
        waitress_serve(app, host=host, port=port, threads=server.threads, _quiet=quiet)
        return
    _share_test_secret(settings)
    if on_start:
        on_start(url)
    _Gunicorn(settings, {
        "bind": f"{host}:{port}",
        "workers": server.workers,
        "threads": server.threads,
        "worker_class": "gthread",
        # a threaded worker reports to the arbiter from its own loop, so this bounds a hung
        # worker, not a slow request (signing waits on no device inside a request)
        "timeout": 60,
        "graceful_timeout": 20,
        "keepalive": 5,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "warning" if quiet else "info",
    }).run()


def _share_test_secret(settings: Settings) -> None:
    """A test server without a secret key gets one shared by all its processes.

    ``create_app`` makes a random key per process in the test environment; with
    several processes a session cookie made by one would be refused by another.
    """
    name = settings.app.secret_key_env
    if settings.app.environment == "test" and not settings.secret(name):
        os.environ[name] = secrets.token_urlsafe(48)


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    """gunicorn configured from ``[server]``, loading the app in each worker."""

    def __init__(self, settings: Settings, options: dict[str, Any]) -> None:
        self.settings = settings
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return _ready_app(self.settings)


def _ready_app(settings: Settings) -> Any:
    """The app with its first requests' work done: templates compiled, stamp fonts made.

    Without it each process spends its first page loads compiling templates
    and its first signature cutting fonts, while users wait.
    """
    from esign.signing.deferred import preload
    from esign.web import create_app

    app = create_app(settings)
    for name in app.jinja_env.list_templates(extensions=["html"]):
        app.jinja_env.get_template(name)
    preload()
    # all of this lives as long as the process: leave it out of the collector's
    # full passes (about 0.1 s each over the libraries' objects)
    gc.collect()
    gc.freeze()
    return app
