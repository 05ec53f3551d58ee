"""Request plumbing shared by the blueprints: the service context, the request's
database session, the signed-in officer, languages, dates and security headers."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from flask import Flask, current_app, g, request, session
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user

from esign.web.i18n import LANGUAGES

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from esign.config import Settings
    from esign.errors import EsignError
    from esign.models import User
    from esign.services.context import Context

PRODUCT = "esign — Ký số văn bản"
#: dates are numeric, day first, in the app's time zone: they read the same in Vietnamese and English
DATE_TIME = "%d/%m/%Y %H:%M"
DATE = "%d/%m/%Y"

CSP = (
    "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
    "form-action 'self'; base-uri 'self'; object-src 'none'"
)


def origin_of(url: str) -> str:
    """scheme://host[:port] of ``url``, or "" if it is not an http(s) address."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return ""
    return f"{parts.scheme}://{parts.netloc}".lower()


def content_security_policy(settings: Settings) -> str:
    """The page policy; scripts may also reach the desktop agent (token.js), nothing else."""
    agent = origin_of(settings.signing.agent_url)
    return f"{CSP}; connect-src 'self'{' ' + agent if agent else ''}"


def esign_ctx() -> Context:
    return current_app.extensions["esign"]


def web_settings() -> Settings:
    """The settings the app was created with (cookies, languages, upload limit, addresses)."""
    return current_app.extensions["esign_settings"]  # type: ignore[no-any-return]


def db() -> Session:
    """The request's database session (read side; services own their writes)."""
    if "db" not in g:
        g.db = esign_ctx().db.sessions()
    return g.db


def me() -> User:
    """The signed-in officer's database row."""
    return current_user.model  # type: ignore[no-any-return]


def select_locale() -> str:
    lang = session.get("lang")
    if lang in LANGUAGES:
        return lang
    if current_user and current_user.is_authenticated and current_user.locale in LANGUAGES:
        return current_user.locale  # type: ignore[no-any-return]
    return web_settings().app.default_locale


def select_timezone() -> str:
    return web_settings().app.timezone


def lang() -> str:
    return str(get_locale() or "vi")


def translate_error(error: EsignError) -> str:
    """The error's sentence in the user's language: its template is the translation key."""
    try:
        return _(error.template, **error.params) if error.params else _(error.template)
    except (KeyError, ValueError, TypeError):
        # a translation whose placeholders do not match the template: show the original
        return error.message


def local_path(target: str | None, default: str = "/") -> str:
    """``target`` if it is a path on this site (no open redirects), else ``default``."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


def wants_json() -> bool:
    if request.path.startswith("/api/"):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def unreachable_certificate(certificates: Any, device: str) -> Any:
    """The officer's certificate on ``device`` that the server cannot reach (it signs in the officer's
    hands: the desktop agent's token), or None. ``certificates`` are an overview's rows."""
    reachable = esign_ctx().backends
    for certificate in certificates:
        if certificate.device == device and not hasattr(reachable.get(certificate.backend),
                                                        "available_credentials"):
            return certificate
    return None


@functools.cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_date(value: datetime | None, fmt: str = DATE_TIME) -> str:
    """``value`` (a naive value is UTC) in the app's time zone, or "" for None.

    A list page shows dozens of dates; Babel's general formatter costs about
    0.1 ms each, this a few microseconds.
    """
    if not value:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(_zone(web_settings().app.timezone)).strftime(fmt)


def label_of(names: dict[str, str] | None, fallback: str = "") -> str:
    """A {"vi": ..., "en": ...} label from a workflow definition in the user's language."""
    if not names:
        return fallback
    return names.get(lang()) or names.get("vi") or next(iter(names.values()), fallback)


def _security_headers(response: Any) -> Any:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", content_security_policy(web_settings()))
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    if web_settings().app.https:
        headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
    if request.endpoint != "static" and "Cache-Control" not in headers:
        # pages show personal work: nothing kept in shared caches or the back/forward history
        headers["Cache-Control"] = "no-store"
    return response


def _close_db(_exc: BaseException | None) -> None:
    session_ = g.pop("db", None)
    if session_ is not None:
        session_.close()


def init_app(app: Flask) -> None:
    app.after_request(_security_headers)
    app.teardown_appcontext(_close_db)
    app.jinja_env.filters["dt"] = local_date
    app.jinja_env.filters["d"] = lambda value: local_date(value, DATE)
    app.jinja_env.filters["label"] = label_of
    app.jinja_env.globals["PRODUCT"] = PRODUCT
    app.jinja_env.globals["LANGUAGES"] = LANGUAGES

    @app.context_processor
    def _globals() -> dict[str, Any]:
        return {"current_lang": lang(), "agent_url": web_settings().signing.agent_url.rstrip("/")}
