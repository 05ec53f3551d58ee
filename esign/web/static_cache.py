"""Static files (CSS, scripts, icons) kept by browsers until they change.

Every ``url_for('static', ...)`` gets ``?v=<hash of the file>``; a request that
carries the current hash is answered with a year-long, immutable cache lifetime,
so pages stop revalidating their style sheet and scripts on every visit. A new
release changes the hash, hence the address, hence what browsers fetch.
Addresses without ``v`` (or with an old one) keep Flask's revalidating default.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import request

if TYPE_CHECKING:
    from flask import Flask

YEAR = 365 * 24 * 3600


class StaticVersions:
    """Short content hashes of the files under one folder, recomputed when a file changes."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder.resolve()
        self._known: dict[str, tuple[tuple[int, int], str]] = {}
        self._lock = threading.Lock()

    def of(self, filename: str) -> str | None:
        path = (self.folder / filename).resolve()
        if not path.is_relative_to(self.folder):
            return None
        try:
            stat = path.stat()
        except OSError:
            return None
        key = (stat.st_mtime_ns, stat.st_size)
        known = self._known.get(filename)
        if known is not None and known[0] == key:
            return known[1]
        try:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        except OSError:
            return None
        with self._lock:
            self._known[filename] = (key, digest)
        return digest


def init_app(app: Flask) -> None:
    if not app.static_folder:
        return
    versions = StaticVersions(Path(app.static_folder))

    @app.url_defaults
    def _static_version(endpoint: str, values: dict[str, Any]) -> None:
        if endpoint == "static" and "filename" in values and "v" not in values:
            version = versions.of(values["filename"])
            if version:
                values["v"] = version

    @app.after_request
    def _static_lifetime(response: Any) -> Any:
        if request.endpoint != "static" or response.status_code not in (200, 304):
            return response
        asked = request.args.get("v")
        filename = (request.view_args or {}).get("filename", "")
        if asked and asked == versions.of(filename):
            response.cache_control.public = True
            response.cache_control.max_age = YEAR
            response.cache_control.immutable = True
            response.cache_control.no_cache = None
        return response
