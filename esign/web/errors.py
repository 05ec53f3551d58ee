"""Error pages: HTML for people, JSON for the API and for clients that ask for it.

The user sees a sentence in their language and a status, never a stack trace
or a repr; the details go to the log.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, current_app, g, jsonify, make_response, render_template
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException, InternalServerError

from esign.errors import EsignError
from esign.web.helpers import translate_error, wants_json, web_settings

log = logging.getLogger(__name__)

HTTP_MESSAGES = {
    400: ("bad_request", _l("The request could not be understood. Reload the page and try again.")),
    401: ("unauthorized", _l("Log in to continue.")),
    403: ("forbidden", _l("You may not do this.")),
    404: ("not_found", _l("This page does not exist.")),
    405: ("method_not_allowed", _l("This address does not accept this kind of request.")),
    410: ("gone", _l("This is no longer available.")),
    413: ("too_large", _l("The file is larger than the upload limit of %(limit)s MB.")),
    429: ("too_many_requests", _l("Too many requests; wait a moment and try again.")),
    500: ("internal", _l("Something went wrong on the server. The error was logged; try again later.")),
}

#: the database refused, dropped or timed out the connection: the transaction rolled back whole
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError, DisconnectionError, PoolTimeout)
DATABASE_UNAVAILABLE_MESSAGE = _l("The database is unavailable for a moment; nothing was changed. Try again.")


def error_response(status: int, code: str, message: str) -> Any:
    if wants_json():
        return make_response(jsonify(error=code, message=message), status)
    return make_response(render_template("errors/error.html", status=status, message=message), status)


def _esign_error(error: EsignError) -> Any:
    if error.status >= 500:
        log.error("%s: %s", type(error).__name__, error.message, exc_info=error)
    return error_response(error.status, error.code, translate_error(error))


def _csrf_error(error: CSRFError) -> Any:
    return error_response(
        400, "csrf", str(_l("The form expired or did not come from this site. Reload the page and try again."))
    )


def _http_error(error: HTTPException) -> Any:
    status = error.code or 500
    if status == 500:
        return _internal_error(error)
    code, message = HTTP_MESSAGES.get(status, ("error", None))
    if status == 413:
        text = str(message) % {"limit": web_settings().app.max_upload_mb}
    else:
        text = str(message) if message is not None else (error.name or "")
    response = error_response(status, code, text)
    if status == 405 and hasattr(error, "valid_methods") and error.valid_methods:
        response.headers["Allow"] = ", ".join(error.valid_methods)
    return response


def _database_unavailable(error: Exception) -> Any:
    # the driver's first line only: the statement and its parameters stay out of the log
    reason = str(getattr(error, "orig", None) or type(error).__name__).splitlines()
    log.warning("database unavailable: %s", reason[0] if reason else type(error).__name__)
    # the signed-in officer cannot be loaded either: the page is rendered as for a visitor
    g._login_user = current_app.login_manager.anonymous_user()
    response = error_response(503, "database_unavailable", str(DATABASE_UNAVAILABLE_MESSAGE))
    response.headers["Retry-After"] = "5"
    return response


def _internal_error(error: Exception) -> Any:
    original = getattr(error, "original_exception", None) or error
    if isinstance(original, EsignError):
        return _esign_error(original)
    if isinstance(original, DATABASE_UNAVAILABLE):
        return _database_unavailable(original)
    log.error("unhandled error", exc_info=original)
    code, message = HTTP_MESSAGES[500]
    return error_response(500, code, str(message))


def init_app(app: Flask) -> None:
    app.register_error_handler(EsignError, _esign_error)
    app.register_error_handler(CSRFError, _csrf_error)
    for kind in DATABASE_UNAVAILABLE:
        app.register_error_handler(kind, _database_unavailable)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(InternalServerError, _internal_error)
    app.register_error_handler(Exception, _internal_error)
