"""Administration: users, roles, and the certificates bound to them. Role admin only."""

from __future__ import annotations

from functools import wraps
from typing import Any

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import login_required

from esign.errors import EsignError, Forbidden, NotFound
from esign.models import Certificate, Unit, User
from esign.services import overview, users
from esign.signing.backend import CertificateBundle
from esign.web.forms import BindForm, UploadCertificateForm, UserCreateForm, UserEditForm
from esign.web.helpers import esign_ctx, me, translate_error, web_settings

bp = Blueprint("admin", __name__, url_prefix="/admin")


def admin_required(view: Any) -> Any:
    @wraps(view)
    @login_required
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if "admin" not in me().roles:
            raise Forbidden("Only an administrator can manage users and certificates")
        return view(*args, **kwargs)

    return wrapped


def _external_backends() -> list[str]:
    """Configured backends whose keys the server cannot list: certificates are uploaded for them."""
    ctx = esign_ctx()
    return [name for name in web_settings().signing.backends
            if name in ctx.backends and not hasattr(ctx.backends[name], "available_credentials")]


@bp.get("/")
@admin_required
def index() -> Any:
    ctx = esign_ctx()
    return render_template("admin/index.html", users=overview.list_users(ctx, me()),
                           seals=overview.unit_seals(ctx, me()))


@bp.route("/users/new", methods=["GET", "POST"])
@admin_required
def new_user() -> Any:
    ctx = esign_ctx()
    form = UserCreateForm()
    form.unit_id.choices = overview.list_units(ctx)
    if not form.is_submitted():
        form.unit_id.data = me().unit_id
    error, status = None, 200
    if form.validate_on_submit():
        try:
            with ctx.db.session() as session:
                actor = session.get(User, me().id)
                unit = session.get(Unit, form.unit_id.data)
                if unit is None:
                    raise NotFound("There is no such unit")
                user = users.create_user(
                    session, actor, unit=unit, username=form.username.data or "",
                    full_name=form.full_name.data or "", password=form.password.data or "",
                    roles=list(form.roles.data or ()), title=form.title.data or "", email=form.email.data or "",
                )
                user_id = user.id
        except EsignError as e:
            error, status = translate_error(e), e.status
        else:
            flash(_("The user %(name)s was created.", name=form.username.data), "success")
            return redirect(url_for("admin.user", user_id=user_id))
    elif form.is_submitted():
        status = 400
    return render_template("admin/new_user.html", form=form, error=error), status


def _render_user(user_id: int, *, edit: UserEditForm | None = None, bind: BindForm | None = None,
                 upload: UploadCertificateForm | None = None, error: str | None = None,
                 status: int = 200) -> Any:
    ctx = esign_ctx()
    row = overview.user_detail(ctx, me(), user_id)
    if edit is None:
        edit = UserEditForm(formdata=None, roles=sorted(row.roles), active=row.active)
    bind = bind or BindForm(formdata=None)
    # a key bound once (to anyone, the agency seal included) is never offered again
    bound = overview.bound_credentials(ctx)
    bind.credential.choices = [
        (f"{c.backend}:{c.credential}", f"{c.credential} — {c.subject}")
        for c in users.available_credentials(ctx) if (c.backend, c.credential) not in bound
    ]
    upload = upload or UploadCertificateForm(formdata=None)
    with ctx.db.session() as session:
        target = session.get(User, user_id)
        totp_on = bool(target is not None and target.totp_secret)
    return render_template("admin/user.html", row=row, edit=edit, bind=bind, upload=upload, error=error,
                           external=_external_backends(), totp_on=totp_on), status


@bp.get("/users/<int:user_id>")
@admin_required
def user(user_id: int) -> Any:
    return _render_user(user_id)


@bp.post("/users/<int:user_id>")
@admin_required
def edit_user(user_id: int) -> Any:
    form = UserEditForm()
    if not form.validate():
        return _render_user(user_id, edit=form, status=400)
    try:
        with esign_ctx().db.session() as session:
            actor = session.get(User, me().id)
            target = session.get(User, user_id)
            if target is None:
                raise NotFound("There is no such user")
            if set(form.roles.data or ()) != target.roles:
                users.set_roles(session, actor, target, list(form.roles.data or ()))
            if bool(form.active.data) != target.active:
                if target.id == actor.id and not form.active.data:
                    raise users.UserError("You cannot deactivate your own account")
                users.set_active(session, actor, target, bool(form.active.data))
    except EsignError as e:
        return _render_user(user_id, edit=form, error=translate_error(e), status=e.status)
    flash(_("Saved."), "success")
    return redirect(url_for("admin.user", user_id=user_id))


@bp.post("/users/<int:user_id>/totp/off")
@admin_required
def totp_off(user_id: int) -> Any:
    """Turn an officer's authenticator app off (a lost or replaced phone): signing asks for the password."""
    try:
        with esign_ctx().db.session() as session:
            target = session.get(User, user_id)
            if target is None:
                raise NotFound("There is no such user")
            users.disable_totp(session, session.get(User, me().id), target, key=b"")
    except EsignError as e:
        return _render_user(user_id, error=translate_error(e), status=e.status)
    flash(_("The authenticator app is off for this officer; they can turn it on again."), "success")
    return redirect(url_for("admin.user", user_id=user_id))


@bp.post("/users/<int:user_id>/bind")
@admin_required
def bind(user_id: int) -> Any:
    ctx = esign_ctx()
    form = BindForm()
    # the choices are only known after reading the server's keys; the service checks the value
    backend, _sep, credential = (form.credential.data or "").partition(":")
    if not form.validate() or not credential:
        return _render_user(user_id, bind=form, status=400)
    try:
        with ctx.db.session() as session:
            actor = session.get(User, me().id)
            target = session.get(User, user_id)
            if target is None:
                raise NotFound("There is no such user")
            users.bind_certificate(session, ctx, actor, owner=target, device=form.device.data or "token",
                                   backend=backend, credential=credential)
    except EsignError as e:
        return _render_user(user_id, bind=form, error=translate_error(e), status=e.status)
    flash(_("The certificate was bound."), "success")
    return redirect(url_for("admin.user", user_id=user_id))


@bp.post("/users/<int:user_id>/certificate")
@admin_required
def upload_certificate(user_id: int) -> Any:
    ctx = esign_ctx()
    form = UploadCertificateForm()
    if not form.validate():
        return _render_user(user_id, upload=form, status=400)
    external = _external_backends()
    try:
        if not external:
            raise users.UserError("No signing backend on this server accepts uploaded certificates")
        certs = users.parse_certificates(form.file.data.read())
        if not certs:
            raise users.UserError("This file holds no certificate")
        bundle = CertificateBundle(cert=certs[0], chain=tuple(certs[1:]))
        with ctx.db.session() as session:
            actor = session.get(User, me().id)
            target = session.get(User, user_id)
            if target is None:
                raise NotFound("There is no such user")
            users.bind_certificate(session, ctx, actor, owner=target, device=form.device.data or "token",
                                   backend=external[0], credential=(form.credential.data or "").strip(),
                                   bundle=bundle)
    except EsignError as e:
        return _render_user(user_id, upload=form, error=translate_error(e), status=e.status)
    flash(_("The certificate was bound."), "success")
    return redirect(url_for("admin.user", user_id=user_id))


@bp.post("/certificates/<int:certificate_id>/unbind")
@admin_required
def unbind(certificate_id: int) -> Any:
    with esign_ctx().db.session() as session:
        actor = session.get(User, me().id)
        certificate = session.get(Certificate, certificate_id)
        if certificate is None:
            raise NotFound("There is no such certificate")
        users.unbind_certificate(session, actor, certificate)
        owner_id = certificate.user_id
    flash(_("The certificate was withdrawn."), "success")
    if owner_id is None:
        return redirect(url_for("admin.index"))
    return redirect(url_for("admin.user", user_id=owner_id))
