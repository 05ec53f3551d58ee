"""The web forms. Every form carries a CSRF token (Flask-WTF)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import (
    BooleanField,
    HiddenField,
    PasswordField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
    widgets,
)
from wtforms.validators import DataRequired, Length, Optional, Regexp

from esign.services.documents import DOC_TYPES, MAX_TITLE
from esign.services.users import MIN_PASSWORD

REQUIRED = _l("This field is required.")


class MultiCheckboxField(SelectMultipleField):
    """A multiple choice shown as checkboxes: easier than a multi-select on a phone."""

    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()


def doc_type_choices() -> list[SelectChoice]:
    return [SelectChoice(code, f"{name.capitalize()} ({code})") for code, name in DOC_TYPES.items()]


class LoginForm(FlaskForm):
    username = StringField(_l("Username"), validators=[DataRequired(REQUIRED), Length(max=64)])
    password = PasswordField(_l("Password"), validators=[DataRequired(REQUIRED), Length(max=200)])


class ComposeForm(FlaskForm):
    idempotency_key = HiddenField()
    doc_type = SelectField(_l("Document type"), choices=doc_type_choices(), default="TTr")
    title = StringField(
        _l("Subject (Về việc…)"),
        validators=[DataRequired(REQUIRED), Length(max=MAX_TITLE, message=_l("At most %(max)d characters."))],
    )
    addressee = StringField(_l("Addressee (Kính gửi)"), validators=[Optional(), Length(max=300)])
    body = TextAreaField(
        _l("Text"),
        validators=[DataRequired(REQUIRED), Length(max=20000, message=_l("At most %(max)d characters."))],
        description=_l("One paragraph per line."),
    )
    recipients = TextAreaField(
        _l("Recipients (Nơi nhận)"),
        validators=[Optional(), Length(max=2000)],
        description=_l("One recipient per line, e.g. “Như trên;” and “Lưu: VT, VP.”"),
    )


class UploadForm(FlaskForm):
    idempotency_key = HiddenField()
    doc_type = SelectField(_l("Document type"), choices=doc_type_choices(), default="TTr")
    title = StringField(
        _l("Subject (Về việc…)"),
        validators=[DataRequired(REQUIRED), Length(max=MAX_TITLE, message=_l("At most %(max)d characters."))],
    )
    file = FileField(_l("PDF file"), validators=[FileRequired(_l("Choose a PDF file."))])


class SignForm(FlaskForm):
    """One form for every signed action; the view checks what the action needs."""

    action = HiddenField()
    idempotency_key = HiddenField()
    certificate_id = SelectField(_l("Certificate"), coerce=int, validate_choice=False, choices=[])
    advisers = MultiCheckboxField(_l("Advisers"), choices=[], validate_choice=False)
    comment = TextAreaField(_l("Comment"), validators=[Optional(), Length(max=4000)])
    number = StringField(
        _l("Document number"),
        validators=[Optional(), Regexp(r"^\d{1,6}$", message=_l("The number is a positive whole number."))],
    )


class PluginUploadForm(FlaskForm):
    """A PDF the officer signed with a whole-document signing plugin, for one signed action."""

    action = HiddenField()
    idempotency_key = HiddenField()
    file = FileField(_l("PDF signed with the plugin"), validators=[FileRequired(_l("Choose a PDF file."))])
    advisers = MultiCheckboxField(_l("Advisers"), choices=[], validate_choice=False)
    comment = TextAreaField(_l("Comment"), validators=[Optional(), Length(max=4000)])


class ActionForm(FlaskForm):
    """Return, reject, reassign: actions that move a document without a signature."""

    action = HiddenField()
    idempotency_key = HiddenField()
    comment = TextAreaField(_l("Reason"), validators=[Optional(), Length(max=4000)])
    assignee = SelectField(_l("Hand over to"), choices=[], validate_choice=False)
    authority = SelectField(_l("Authority form"), choices=[], validate_choice=False)


ROLE_LABELS = {
    "officer": _l("Officer (drafts)"),
    "adviser": _l("Adviser"),
    "chair": _l("Chair (approves)"),
    "clerk": _l("Clerk (numbers and seals)"),
    "auditor": _l("Auditor"),
    "admin": _l("Administrator"),
}


def role_choices() -> list[SelectChoice]:
    return [SelectChoice(role, label) for role, label in ROLE_LABELS.items()]


class UserCreateForm(FlaskForm):
    unit_id = SelectField(_l("Unit"), coerce=int, choices=[])
    username = StringField(
        _l("Username"),
        validators=[
            DataRequired(REQUIRED),
            Length(max=64),
            Regexp(r"^[A-Za-z0-9._-]+$", message=_l("Letters, digits, dots, dashes and underscores only.")),
        ],
    )
    full_name = StringField(_l("Full name"), validators=[DataRequired(REQUIRED), Length(max=200)])
    title = StringField(_l("Job title"), validators=[Optional(), Length(max=200)])
    email = StringField(_l("Email"), validators=[
        Optional(), Length(max=200), Regexp(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", message=_l("This is not an email address."))])
    roles = MultiCheckboxField(_l("Roles"), choices=role_choices(),
                               validators=[DataRequired(_l("Choose at least one role."))])
    password = PasswordField(
        _l("Password"),
        validators=[DataRequired(REQUIRED),
                    Length(min=MIN_PASSWORD, max=200, message=_l("At least %(min)d characters."))],
    )


class UserEditForm(FlaskForm):
    roles = MultiCheckboxField(_l("Roles"), choices=role_choices(),
                               validators=[DataRequired(_l("Choose at least one role."))])
    active = BooleanField(_l("Active (may sign in)"))


DEVICE_LABELS = {"token": _l("USB token"), "mobile": _l("Mobile certificate")}


class BindForm(FlaskForm):
    credential = SelectField(_l("Key held by the server"), choices=[], validate_choice=False,
                             validators=[DataRequired(REQUIRED)])
    device = SelectField(_l("Device"), choices=[SelectChoice(k, v) for k, v in DEVICE_LABELS.items()])


class UploadCertificateForm(FlaskForm):
    file = FileField(_l("Certificate (PEM or DER)"), validators=[FileRequired(_l("Choose a certificate file."))])
    device = SelectField(_l("Device"), choices=[SelectChoice(k, v) for k, v in DEVICE_LABELS.items()])
    credential = StringField(
        _l("Name of the key on the device"),
        validators=[DataRequired(REQUIRED), Length(max=200)],
        description=_l("The label the officer's token or signing service uses for this key."),
    )


class VerifyForm(FlaskForm):
    """The auditor's upload: any PDF, checked against the configured trusted roots."""

    file = FileField(_l("PDF file to check"), validators=[FileRequired(_l("Choose a PDF file."))])


class CheckCopyForm(FlaskForm):
    """A copy of one document, checked against what esign recorded for it (the QR page)."""

    file = FileField(_l("Your copy (PDF)"), validators=[FileRequired(_l("Choose a PDF file."))])
