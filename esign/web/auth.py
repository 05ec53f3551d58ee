"""Signing in and out, and the language switch."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, jsonify, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user

from esign.errors import TooManyAttempts
from esign.models import User
from esign.services import users
from esign.web.forms import LoginForm
from esign.web.helpers import db, local_path, translate_error, wants_json
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


def _load_user(user_id: str) -> LoginUser | None:
    try:
        user = db().get(User, int(user_id))
    except ValueError:
        return None
    return LoginUser(user) if user is not None and user.active else None


def _unauthorized() -> Any:
    if wants_json():
        return jsonify(error="unauthorized", message=_("Log in to continue.")), 401
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


def init_login(app: Flask) -> None:
    manager = LoginManager(app)
    manager.login_view = "auth.login"
    manager.session_protection = "basic"
    manager.user_loader(_load_user)
    manager.unauthorized_handler(_unauthorized)


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
            lang = session.get("lang")
            # a fresh session on sign-in: nothing from before survives but the language
            session.clear()
            if lang:
                session["lang"] = lang
            session.permanent = True
            login_user(LoginUser(user))
            return redirect(local_path(request.args.get("next"), url_for("inbox.home")))
        form.password.errors.append(_("The username or password is wrong."))
        status = 401
    elif request.method == "POST":
        status = 400
    return render_template("auth/login.html", form=form), status


@bp.post("/logout")
def logout() -> Any:
    logout_user()
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang
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


