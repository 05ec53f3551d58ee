"""The web app: one factory, nothing at import time.

``create_app`` wires settings, the service context, sessions and sign-in,
CSRF, languages, security headers, error pages and the blueprints.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import TYPE_CHECKING

from esign.errors import ConfigError

if TYPE_CHECKING:
    from flask import Flask

    from esign.config import Settings
    from esign.services.context import Context

#: the upload limit is the file's; the rest of a multipart body needs a little room
_FORM_OVERHEAD = 256 * 1024


def create_app(settings: Settings | None = None, *, ctx: Context | None = None) -> Flask:
    """Build the Flask app on ``settings`` (default: ``config.toml``) and a service context."""
    from flask import Flask
    from flask_babel import Babel
    from flask_wtf.csrf import CSRFProtect

    from esign.config import load_settings
    from esign.web import admin, api, auth, documents, errors, helpers, i18n, inbox, public, verify

    if settings is None:
        settings = ctx.settings if ctx is not None else load_settings()
    secret_key = settings.secret(settings.app.secret_key_env)
    if not secret_key:
        if settings.app.environment != "test":
            raise ConfigError(
                "Set the environment variable %(name)s to a long random secret key before starting "
                "the web app (for example: python -c \"import secrets; print(secrets.token_urlsafe(48))\")",
                name=settings.app.secret_key_env,
            )
        secret_key = secrets.token_urlsafe(48)

    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=secret_key,
        SESSION_COOKIE_NAME="esign_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.app.https,
        PERMANENT_SESSION_LIFETIME=timedelta(minutes=settings.app.session_minutes),
        SESSION_REFRESH_EACH_REQUEST=True,
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SECURE=settings.app.https,
        MAX_CONTENT_LENGTH=settings.app.max_upload_mb * 1024 * 1024 + _FORM_OVERHEAD,
        # a form stays valid as long as the session that shows it
        WTF_CSRF_TIME_LIMIT=settings.app.session_minutes * 60,
        WTF_CSRF_SSL_STRICT=settings.app.https,
        BABEL_DEFAULT_LOCALE=settings.app.default_locale,
        BABEL_DEFAULT_TIMEZONE=settings.app.timezone,
        BABEL_TRANSLATION_DIRECTORIES=str(i18n.TRANSLATIONS),
        PREFERRED_URL_SCHEME="https" if settings.app.https else "http",
    )

    if ctx is None:
        from esign.services.context import Context

        ctx = Context.create(settings)
    app.extensions["esign"] = ctx
    app.extensions["esign_settings"] = settings

    i18n.compile_catalogs()
    Babel(app, locale_selector=helpers.select_locale, timezone_selector=helpers.select_timezone)
    CSRFProtect(app)
    auth.init_login(app)
    helpers.init_app(app)
    from esign.web import static_cache  # versioned static addresses, cached for a year
    static_cache.init_app(app)
    errors.init_app(app)

    for module in (auth, inbox, documents, api, admin, public, verify):
        app.register_blueprint(module.bp)
    from esign.web import reports  # the unit report, escalation and notifications
    app.register_blueprint(reports.bp)
    from esign.web import live  # live updates of new work, the service worker, Web Push
    live.init_app(app)
    from esign.web import meeting  # meeting mode and the "confirm on your phone" page
    meeting.init_app(app)
    return app
