"""The authority forms of Decree 30/2020/NĐ-CP and the lines they print above a signer's name.

Decree 30/2020/NĐ-CP, Appendix I, section II.8 ("Quyền hạn, chức vụ của người
ký") writes the signer's authority as an abbreviation before the title of the
person or body the signer acts for, in capitals, bold, 13-14 pt:

- **TM.** (thay mặt): signing on behalf of a collective (tập thể lãnh đạo),
  e.g. a ward People's Committee deciding collectively: ``TM. ỦY BAN NHÂN DÂN``
  then the signer's own title, ``CHỦ TỊCH``.
- **Q.** (quyền): the person assigned the head's powers (giao quyền cấp
  trưởng) signs with ``Q.`` before the head's title: ``Q. CHỦ TỊCH``; the
  abbreviated title is the only title line.
- **KT.** (ký thay): a deputy signs in place of the head: ``KT. CHỦ TỊCH``,
  then the deputy's own title, ``PHÓ CHỦ TỊCH``. A deputy put in charge
  (phụ trách, điều hành) signs the same way.
- **TL.** (thừa lệnh): the head of an office or division signs by order of the
  head, on matters the head has assigned by regulation: ``TL. CHỦ TỊCH`` then
  the signer's own title, e.g. ``CHÁNH VĂN PHÒNG``.
- **TUQ.** (thừa ủy quyền): signing under a written, time-limited
  authorisation from the head, for specific matters; the authorised person may
  not authorise anyone further: ``TUQ. CHỦ TỊCH`` then the signer's own title.

Where a collective body decides (the People's Committee), the decree's model
forms put ``TM. ỦY BAN NHÂN DÂN`` above ``KT. CHỦ TỊCH`` or ``Q. CHỦ TỊCH``.
:func:`authority_lines` does so when it is given the collective's name.

Not sure, and left to the service that calls :func:`authority_lines`:

- whether a given document is decided by the collective (TM. line on top) or
  within the chair's own powers (no TM. line): this is a property of the
  document type, not of the form, so the caller passes ``collective`` or not;
- TL. and TUQ. are written here *without* a TM. line even when a collective
  is given: the decree ties both to the head's powers, and the model forms
  show no TM. above them; nested forms such as ``TL. CHỦ TỊCH / KT. CHÁNH VĂN
  PHÒNG / PHÓ CHÁNH VĂN PHÒNG`` (a deputy signing by order) are not produced;
- TM. is used with the signer's own title only; a deputy signing for the
  collective gets ``TM. ... / KT. CHỦ TỊCH / PHÓ CHỦ TỊCH`` through the KT.
  form with ``collective`` set, not through TM.

Titles are upper-cased (Python's ``str.upper`` handles Vietnamese letters).
"""

from __future__ import annotations

import enum

from esign.errors import WorkflowError


class AuthorityForm(enum.StrEnum):
    """An authority form as printed: the value is the abbreviation with its dot."""

    TM = "TM."
    KT = "KT."
    TL = "TL."
    TUQ = "TUQ."
    Q = "Q."

    @property
    def vi(self) -> str:
        """The form spelt out in Vietnamese."""
        return _DESCRIPTIONS[self][0]

    @property
    def en(self) -> str:
        """The form described in English."""
        return _DESCRIPTIONS[self][1]

    @property
    def needs_principal(self) -> bool:
        """Whether the printed lines name the title of the person signed for."""
        return self is not AuthorityForm.TM

    @classmethod
    def parse(cls, text: str | AuthorityForm) -> AuthorityForm:
        """The form written ``text`` ("KT." or "KT", any case); WorkflowError if none."""
        if isinstance(text, AuthorityForm):
            return text
        wanted = text.strip().upper()
        if wanted and not wanted.endswith("."):
            wanted += "."
        for form in cls:
            if form.value == wanted:
                return form
        raise WorkflowError(
            "%(form)s is not an authority form; use one of %(forms)s",
            form=text,
            forms=", ".join(f.value for f in cls),
        )


_DESCRIPTIONS: dict[AuthorityForm, tuple[str, str]] = {
    AuthorityForm.TM: ("thay mặt", "on behalf of the collective body"),
    AuthorityForm.KT: ("ký thay", "signing in place of the head (a deputy)"),
    AuthorityForm.TL: ("thừa lệnh", "by order of the head"),
    AuthorityForm.TUQ: ("thừa ủy quyền", "under the head's written authorisation"),
    AuthorityForm.Q: ("quyền", "acting head"),
}


def authority_lines(
    form: AuthorityForm | str,
    principal_title: str,
    own_title: str,
    collective: str = "",
) -> tuple[str, ...]:
    """The lines printed above the signer's name; the last one is the title line.

    ``principal_title`` is the title of the person signed for (``CHỦ TỊCH``),
    ``own_title`` the signer's (``PHÓ CHỦ TỊCH``), ``collective`` the name of
    the collective body when the document is the collective's decision
    (``ỦY BAN NHÂN DÂN``), else empty. Raises WorkflowError when a title the
    form needs is missing.

    >>> authority_lines("KT.", "Chủ tịch", "Phó Chủ tịch")
    ('KT. CHỦ TỊCH', 'PHÓ CHỦ TỊCH')
    >>> authority_lines("TM.", "", "Chủ tịch", "Ủy ban nhân dân")
    ('TM. ỦY BAN NHÂN DÂN', 'CHỦ TỊCH')
    """
    form = AuthorityForm.parse(form)
    principal, own, body = _title(principal_title), _title(own_title), _title(collective)
    if form is AuthorityForm.TM:
        if not body:
            raise WorkflowError("Signing with TM. needs the name of the collective body signed for")
        if not own:
            raise WorkflowError("Signing with TM. needs the signer's own title")
        return (f"TM. {body}", own)
    if not principal:
        raise WorkflowError(
            "Signing with %(form)s needs the title of the person signed for", form=form.value
        )
    if form is AuthorityForm.Q:
        # the acting head prints only the head's title, abbreviated: "Q. CHỦ TỊCH"
        return (*_collective(body), f"Q. {principal}")
    if not own:
        raise WorkflowError("Signing with %(form)s needs the signer's own title", form=form.value)
    if form is AuthorityForm.KT:
        return (*_collective(body), f"KT. {principal}", own)
    return (f"{form.value} {principal}", own)


def _title(text: str) -> str:
    return " ".join(text.split()).upper()


def _collective(body: str) -> tuple[str, ...]:
    return (f"TM. {body}",) if body else ()
