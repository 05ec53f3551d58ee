"""Live updates of new work in open pages, the service worker, and Web Push subscriptions.

Open pages poll ``/live/status`` (a cheap JSON answer, 304 when nothing
changed) instead of holding a server thread each: waitress serves the app with
a few threads, and a poll every ``[notifications] poll_seconds`` from each open
page costs a few index look-ups. A poll does not extend the officer's session:
an unattended page lets it expire like any other.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    request,
    url_for,
)
from flask.sessions import SecureCookieSessionInterface
from flask_babel import gettext as _
from flask_login import current_user, login_required

from esign.errors import EsignError, NotFound, SubscriptionRefused
from esign.services import live, push
from esign.web.helpers import esign_ctx, me, translate_error, web_settings

bp = Blueprint("live", __name__)


class _PassiveSessionInterface(SecureCookieSessionInterface):
    """Flask's cookie sessions, except that a request marked passive does not refresh the cookie."""

    def should_set_cookie(self, app: Flask, session: Any) -> bool:
        if g.get("passive_request"):
            return bool(session.modified)
        return super().should_set_cookie(app, session)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    if type(app.session_interface) is SecureCookieSessionInterface:
        app.session_interface = _PassiveSessionInterface()


@bp.get("/live/status")
@login_required
def status() -> Any:
    g.passive_request = True
    state = live.live_status(esign_ctx(), me(), request.args.get("since"))
    if request.if_none_match.contains(state.etag):
        response = Response(status=304)
    else:
        response = jsonify(
            cursor=state.cursor, inbox=state.inbox, unread=state.unread,
            new=[{"kind": i.kind, "title": i.title, "url": url_for("documents.show", document_id=i.document_id)}
                 for i in state.new])
    response.set_etag(state.etag)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/sw.js")
def service_worker() -> Any:
    """The service worker, from the site's root so that its scope is the whole app."""
    script = (Path(current_app.static_folder or "static") / "js" / "sw.js").read_bytes()
    response = Response(script, mimetype="text/javascript")
    response.headers["Service-Worker-Allowed"] = "/"
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/push/key")
@login_required
def key() -> Any:
    g.passive_request = True
    if not web_settings().notifications.push_enabled:
        return jsonify(error="push_disabled", message=_("Notifications on phones are turned off on this server")), 404
    return jsonify(publicKey=push.application_server_key(esign_ctx()))


@bp.post("/push/subscriptions")
@login_required
def subscribe() -> Any:
    body = request.get_json(silent=True) or {}
    keys = body.get("keys") if isinstance(body.get("keys"), dict) else {}
    try:
        values = [body.get("endpoint"), keys.get("p256dh"), keys.get("auth")]
        if not all(isinstance(v, str) for v in values):
            raise SubscriptionRefused("This browser's push subscription is not valid")
        subscription_id = push.subscribe(esign_ctx(), me(), *values,
                                         label=device_label(request.headers.get("User-Agent", "")))
    except SubscriptionRefused as e:
        return jsonify(error=e.code, message=translate_error(e)), e.status
    return jsonify(id=subscription_id, message=_("Notifications are on for this phone.")), 201


@bp.post("/push/unsubscribe")
@login_required
def unsubscribe_browser() -> Any:
    """The browser turned its subscription off: forget it (by its endpoint)."""
    body = request.get_json(silent=True) or {}
    endpoint = body.get("endpoint")
    try:
        push.unsubscribe(esign_ctx(), me(), endpoint=endpoint if isinstance(endpoint, str) else None)
    except NotFound:
        pass  # already gone: the outcome the browser wants
    return jsonify(message=_("Notifications are off for this phone.")), 200


@bp.post("/push/subscriptions/<int:subscription_id>/delete")
@login_required
def remove(subscription_id: int) -> Any:
    try:
        push.unsubscribe(esign_ctx(), me(), subscription_id=subscription_id)
        flash(_("The device will no longer receive notifications."), "success")
    except EsignError as e:
        if e.status >= 500:
            raise
        flash(translate_error(e), "error")
    return redirect(url_for("reports.notifications"))


_BROWSERS = (("Edg/", "Edge"), ("SamsungBrowser", "Samsung Internet"), ("Firefox", "Firefox"),
             ("CriOS", "Chrome"), ("Chrome", "Chrome"), ("Chromium", "Chromium"), ("Safari", "Safari"))
_SYSTEMS = (("Android", "Android"), ("iPhone", "iPhone"), ("iPad", "iPad"), ("Windows", "Windows"),
            ("Mac OS X", "macOS"), ("CrOS", "ChromeOS"), ("Linux", "Linux"))


def device_label(user_agent: str) -> str:
    """"Chrome · Android": enough to tell one's devices apart, nothing more of the User-Agent."""
    browser = next((name for mark, name in _BROWSERS if mark in user_agent), "")
    system = next((name for mark, name in _SYSTEMS if re.search(re.escape(mark), user_agent)), "")
    return " · ".join(p for p in (browser, system) if p)


@bp.app_context_processor
def _live_globals() -> dict[str, Any]:
    def live_config() -> dict[str, Any]:
        """The counts and cursor the page starts from (one query), and the poll interval."""
        if not current_user or not current_user.is_authenticated:
            return {"cursor": "", "inbox": 0, "unread": 0, "approvals": 0, "poll": 0}
        if "live_state" not in g:
            g.live_state = live.live_status(esign_ctx(), me())
        state = g.live_state
        return {"cursor": state.cursor, "inbox": state.inbox, "unread": state.unread,
                "approvals": state.approvals, "poll": web_settings().notifications.poll_seconds}

    def push_subscriptions() -> list[push.SubscriptionRow]:
        if not current_user or not current_user.is_authenticated:
            return []
        return push.subscriptions_of(esign_ctx(), me())

    def push_enabled() -> bool:
        return web_settings().notifications.push_enabled

    return {"live_config": live_config, "push_subscriptions": push_subscriptions, "push_enabled": push_enabled}
