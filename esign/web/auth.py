"""Signing in and out, session expiry, re-authentication before signing, TOTP, the language switch.

A session ends after ``[app] session_minutes`` without a request, and
``session_max_hours`` after sign-in whatever the activity; logging out raises
the officer's ``session_version``, so a copy of the old cookie no longer works.
Views that sign are wrapped in :func:`reauth_required`: the officer must have
typed the password (or the TOTP code, once TOTP is on) within
``reauth_minutes``.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, TypeVar, overload

import segno
from flask import (
    Blueprint,
    Flask,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_login import (
    LoginManager,
    UserMixin,
    current_user,
    login_required,
    login_user,
    logout_user,
)
from sqlalchemy.orm import joinedload

from esign.errors import EsignError, TooManyAttempts
from esign.models import User
from esign.services import users
from esign.web.forms import LoginForm
from esign.web.helpers import db, local_path, me, translate_error, wants_json, web_settings
from esign.web.i18n import LANGUAGES

bp = Blueprint("auth", __name__)


class LoginUser(UserMixin):
    """Flask-Login's view of an officer; the database row is ``model``."""

    def __init__(self, model: User) -> None:
        self.model = model

    def get_id(self) -> str:
        return str(self.model.id)

    @property
    def is_active(self) -> bool:
        return bool(self.model.active)

    def __getattr__(self, name: str) -> Any:
        # templates read current_user.full_name, .roles, .unit...
        return getattr(self.model, name)


# session keys: when the officer signed in, was last seen, last typed the password or code,
# and the user's session_version at sign-in
LOGIN_AT, SEEN_AT, AUTH_AT, VERSION = "login_at", "seen_at", "auth_at", "ver"
#: the form field that carries the password or code on a re-authentication
REAUTH_FIELD = "reauth_secret"


def now() -> float:
    """Seconds since the epoch; the one clock of session expiry and re-authentication."""
    return time.time()


def _restart_session() -> None:
    """An empty session that keeps only the language."""
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang


def _load_user(user_id: str) -> LoginUser | None:
    try:
        # with the roles in the same query: every page reads them
        user = db().get(User, int(user_id), options=[joinedload(User.role_rows)])
    except ValueError:
        return None
    if user is None or not user.active:
        return None
    app = web_settings().app
    t = now()
    login_at, seen_at = session.get(LOGIN_AT), session.get(SEEN_AT)
    if session.get(VERSION) != user.session_version:
        # logged out (or the password changed) since this session began
        _restart_session()
        return None
    if (not isinstance(login_at, (int, float)) or not isinstance(seen_at, (int, float))
            or t - seen_at > app.session_minutes * 60 or t - login_at > app.session_max_hours * 3600):
        _restart_session()
        g.session_expired = True
        return None
    return LoginUser(user)


def _note_activity(response: Any) -> Any:
    """A request of the signed-in officer keeps the session alive (not a background poll)."""
    if (current_user.is_authenticated and not g.get("passive_request")
            and isinstance(session.get(SEEN_AT), (int, float))):
        session[SEEN_AT] = now()
    return response


def _unauthorized() -> Any:
    message = _("Your session has ended; log in again.") if g.get("session_expired") else _("Log in to continue.")
    if wants_json():
        return jsonify(error="unauthorized", message=message), 401
    if g.get("session_expired"):
        flash(message, "info")
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


def init_login(app: Flask) -> None:
    manager = LoginManager(app)
    manager.login_view = "auth.login"
    manager.session_protection = "basic"
    manager.user_loader(_load_user)
    manager.unauthorized_handler(_unauthorized)
    app.after_request(_note_activity)


def _start_session(user: User) -> None:
    _restart_session()  # a fresh session on sign-in: nothing from before survives but the language
    session.permanent = True
    t = now()
    session[LOGIN_AT] = session[SEEN_AT] = session[AUTH_AT] = t
    session[VERSION] = user.session_version
    login_user(LoginUser(user))


# --- re-authentication before signing -------------------------------------------------------


def reauth_fresh() -> bool:
    """Whether the signed-in officer typed the password (or code) recently enough to sign."""
    at = session.get(AUTH_AT)
    return isinstance(at, (int, float)) and now() - at <= web_settings().app.reauth_minutes * 60


def uses_totp() -> bool:
    return bool(current_user.is_authenticated and me().totp_secret)


def _secret_key() -> bytes:
    key = current_app.secret_key
    return key.encode() if isinstance(key, str) else bytes(key or b"")


def _confirm(secret: str) -> str | None:
    """Check the password or code; None when it is right, else the sentence to show."""
    try:
        ok = users.reauthenticate(db(), me(), secret, key=_secret_key(), source=request.remote_addr or "")
    except TooManyAttempts as e:
        db().rollback()
        return translate_error(e)
    db().commit()  # the attempt's audit record, and the TOTP step used
    if not ok:
        return _("The code is wrong or was already used.") if uses_totp() else _("The password is wrong.")
    session[AUTH_AT] = now()
    return None


def _reauth_page(*, action: str, hidden: list[tuple[str, str]], back: str, error: str | None = None,
                 note: str | None = None, status: int = 200) -> Any:
    return render_template("auth/reauth.html", action=action, hidden=hidden, back=back, error=error, note=note,
                           totp=uses_totp(), field=REAUTH_FIELD,
                           minutes=web_settings().app.reauth_minutes), status


V = TypeVar("V", bound=Callable[..., Any])


@overload
def reauth_required(view: V) -> V: ...
@overload
def reauth_required(*, back: str | None = None) -> Callable[[V], V]: ...


def reauth_required(view: Any = None, *, back: str | None = None) -> Any:
    """The view signs: it runs only if the officer typed the password (or TOTP code) lately.

    Put it under ``@login_required``. ``back`` names the endpoint of the page the
    officer returns to (called with the view's arguments, e.g. "documents.show");
    without it, the referring page of this site. When the confirmation is stale:

    - a form POST gets a page asking for the password, which posts the same form
      (every field kept, the CSRF token renewed) back to the same address, so the
      action goes through as soon as the password is right;
    - a POST with a file (which a page cannot carry over) is sent to the
      re-authentication page and then back, with a message to send the file again;
    - a JSON call gets 401 ``{"error": "reauth_required", "message", "reauth_url"}``.

    A wrong password or code counts toward the sign-in lockout.
    """

    def decorate(fn: V) -> V:
        @functools.wraps(fn)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                return current_app.login_manager.unauthorized()  # type: ignore[attr-defined]
            if reauth_fresh():
                return fn(*args, **kwargs)
            back_url = _back_url(back, kwargs)
            if wants_json() or request.is_json:
                return jsonify(error="reauth_required",
                               message=_("Confirm it is you: type your password again before signing."),
                               reauth_url=url_for("auth.reauth", next=back_url)), 401
            if request.method != "POST":
                return redirect(url_for("auth.reauth", next=request.full_path.rstrip("?")))
            if any(f.filename for f in request.files.values()):
                flash(_("Confirm it is you, then choose the file and sign again."), "info")
                return redirect(url_for("auth.reauth", next=back_url))
            hidden = [(name, value) for name, values in request.form.lists() if name not in (REAUTH_FIELD, "csrf_token")
                      for value in values]
            secret = request.form.get(REAUTH_FIELD, "")
            if secret:
                error = _confirm(secret)
                if error is None:
                    return fn(*args, **kwargs)
                return _reauth_page(action=request.path, hidden=hidden, back=back_url, error=error, status=401)
            return _reauth_page(action=request.path, hidden=hidden, back=back_url, status=401)

        return wrapped  # type: ignore[return-value]

    return decorate(view) if view is not None else decorate


def _back_url(endpoint: str | None, values: dict[str, Any]) -> str:
    if endpoint:
        return url_for(endpoint, **values)
    referrer = request.referrer or ""
    host = request.host_url
    path = "/" + referrer[len(host):] if referrer.startswith(host) else ""
    return local_path(path, url_for("inbox.home"))


@bp.route("/reauth", methods=["GET", "POST"])
@login_required
def reauth() -> Any:
    """Confirm it is you (password, or TOTP code), then back to the page the officer came from."""
    back = local_path(request.args.get("next"), url_for("inbox.home"))
    action = url_for("auth.reauth", next=back)
    if request.method == "POST":
        secret = request.form.get(REAUTH_FIELD, "")
        if not secret:
            return _reauth_page(action=action, hidden=[], back=back, status=400,
                                error=_("This field is required."))
        error = _confirm(secret)
        if error is not None:
            return _reauth_page(action=action, hidden=[], back=back, error=error, status=401)
        flash(_("Thank you. You can sign for the next %(minutes)s minutes.",
                minutes=web_settings().app.reauth_minutes), "success")
        return redirect(back)
    return _reauth_page(action=action, hidden=[], back=back)


# --- TOTP enrolment ----------------------------------------------------------------------------

PENDING_TOTP = "totp_pending"


@bp.get("/account/security")
@login_required
def security() -> Any:
    """Turn the authenticator-app code (TOTP) on or off for re-authentication before signing."""
    qr_uri = secret = None
    if not me().totp_secret:
        secret = session.get(PENDING_TOTP)
        if not isinstance(secret, str):
            secret = session[PENDING_TOTP] = users.new_totp_secret()
        qr_uri = segno.make(users.totp_uri(me(), secret), error="m").svg_data_uri(scale=5, border=2)
    return render_template("auth/security.html", enabled=bool(me().totp_secret), secret=secret, qr_uri=qr_uri,
                           error=g.get("security_error")), 400 if g.get("security_error") else 200


def _security_failed(error: str) -> Any:
    g.security_error = error
    return security()


@bp.post("/account/security/totp")
@login_required
def totp_enable() -> Any:
    secret = session.get(PENDING_TOTP)
    if not isinstance(secret, str) or me().totp_secret:
        return redirect(url_for("auth.security"))
    try:
        users.enable_totp(db(), me(), secret, request.form.get("code", ""), request.form.get("password", ""),
                          key=_secret_key(), source=request.remote_addr or "")
    except TooManyAttempts as e:
        db().rollback()
        return _security_failed(translate_error(e))
    except EsignError as e:
        db().commit()  # a wrong password is recorded
        return _security_failed(translate_error(e))
    db().commit()
    session.pop(PENDING_TOTP, None)
    session[AUTH_AT] = now()
    flash(_("The authenticator app is on: signing now asks for its code."), "success")
    return redirect(url_for("auth.security"))


@bp.post("/account/security/totp/off")
@login_required
def totp_disable() -> Any:
    try:
        users.disable_totp(db(), me(), me(), request.form.get("password", ""), key=_secret_key(),
                           source=request.remote_addr or "")
    except TooManyAttempts as e:
        db().rollback()
        return _security_failed(translate_error(e))
    except EsignError as e:
        db().commit()
        return _security_failed(translate_error(e))
    db().commit()
    flash(_("The authenticator app is off: signing asks for your password."), "info")
    return redirect(url_for("auth.security"))


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    if current_user.is_authenticated:
        return redirect(url_for("inbox.home"))
    form = LoginForm()
    status = 200
    if form.validate_on_submit():
        try:
            user = users.authenticate(db(), form.username.data or "", form.password.data or "",
                                      source=request.remote_addr or "")
        except TooManyAttempts as e:
            form.password.errors.append(translate_error(e))
            return render_template("auth/login.html", form=form), e.status
        db().commit()  # the attempt's audit record, and a rehashed password
        if user is not None:
            _start_session(user)
            return redirect(local_path(request.args.get("next"), url_for("inbox.home")))
        form.password.errors.append(_("The username or password is wrong."))
        status = 401
    elif request.method == "POST":
        status = 400
    return render_template("auth/login.html", form=form), status


@bp.post("/logout")
def logout() -> Any:
    if current_user.is_authenticated:
        # server side: a copy of this session's cookie no longer signs anyone in
        users.end_sessions(db(), me())
        db().commit()
    logout_user()
    _restart_session()
    return redirect(url_for("auth.login"))


@bp.post("/lang")
def set_language() -> Any:
    """Switch the language for this session, and remember it for a signed-in officer."""
    lang = request.form.get("lang", "")
    if lang in LANGUAGES:
        session["lang"] = lang
        if current_user.is_authenticated:
            # a preference, not a record: it needs no service or audit event
            current_user.model.locale = lang
            db().commit()
    return redirect(local_path(request.form.get("next"), url_for("inbox.home")))


