"""Authority forms (Decree 30/2020/NĐ-CP, Appendix I) and the lines printed above the signer's name."""

from __future__ import annotations

import pytest

from esign.errors import WorkflowError
from esign.workflow.authority import AuthorityForm, authority_lines

UBND = "Ủy ban nhân dân"


def test_kt_deputy_signs_in_place_of_the_chair() -> None:
    assert authority_lines("KT.", "Chủ tịch", "Phó Chủ tịch") == ("KT. CHỦ TỊCH", "PHÓ CHỦ TỊCH")


def test_kt_for_a_collective_decision_puts_tm_on_top() -> None:
    assert authority_lines(AuthorityForm.KT, "Chủ tịch", "Phó Chủ tịch", UBND) == (
        "TM. ỦY BAN NHÂN DÂN",
        "KT. CHỦ TỊCH",
        "PHÓ CHỦ TỊCH",
    )


def test_tm_chair_signs_for_the_committee() -> None:
    assert authority_lines("TM.", "", "Chủ tịch", UBND) == ("TM. ỦY BAN NHÂN DÂN", "CHỦ TỊCH")


def test_tl_chief_of_office_signs_by_order() -> None:
    assert authority_lines("TL.", "Chủ tịch", "Chánh Văn phòng") == (
        "TL. CHỦ TỊCH",
        "CHÁNH VĂN PHÒNG",
    )


def test_tl_and_tuq_ignore_the_collective() -> None:
    assert authority_lines("TL.", "Chủ tịch", "Chánh Văn phòng", UBND)[0] == "TL. CHỦ TỊCH"
    assert authority_lines("TUQ.", "Chủ tịch", "Trưởng phòng Nội vụ", UBND) == (
        "TUQ. CHỦ TỊCH",
        "TRƯỞNG PHÒNG NỘI VỤ",
    )


def test_q_acting_chair_prints_only_the_abbreviated_title() -> None:
    assert authority_lines("Q.", "Chủ tịch", "Phó Chủ tịch") == ("Q. CHỦ TỊCH",)
    assert authority_lines("Q.", "Chủ tịch", "Phó Chủ tịch", UBND) == (
        "TM. ỦY BAN NHÂN DÂN",
        "Q. CHỦ TỊCH",
    )


def test_authority_lines_collapse_spaces_in_titles() -> None:
    assert authority_lines("KT.", "  chủ   tịch ", "phó chủ tịch") == (
        "KT. CHỦ TỊCH",
        "PHÓ CHỦ TỊCH",
    )


@pytest.mark.parametrize(
    ("form", "principal", "own", "collective", "missing"),
    [
        ("KT.", "", "Phó Chủ tịch", "", "title of the person signed for"),
        ("TL.", "Chủ tịch", "", "", "signer's own title"),
        ("TM.", "", "Chủ tịch", "", "name of the collective body"),
        ("TM.", "", "", UBND, "signer's own title"),
    ],
)
def test_authority_lines_refuse_a_missing_title(
    form: str, principal: str, own: str, collective: str, missing: str
) -> None:
    with pytest.raises(WorkflowError, match=missing):
        authority_lines(form, principal, own, collective)


def test_every_form_has_vietnamese_and_english_descriptions() -> None:
    assert [f.value for f in AuthorityForm] == ["TM.", "KT.", "TL.", "TUQ.", "Q."]
    assert AuthorityForm.KT.vi == "ký thay" and AuthorityForm.TUQ.vi == "thừa ủy quyền"
    assert (
        AuthorityForm.TL.vi == "thừa lệnh"
        and AuthorityForm.Q.vi == "quyền"
        and AuthorityForm.TM.vi == "thay mặt"
    )
    assert all(f.en for f in AuthorityForm)


@pytest.mark.parametrize(
    ("text", "form"),
    [("KT.", AuthorityForm.KT), ("kt", AuthorityForm.KT), (" TUQ ", AuthorityForm.TUQ)],
)
def test_parse_accepts_the_abbreviation_with_or_without_dot(text: str, form: AuthorityForm) -> None:
    assert AuthorityForm.parse(text) is form


@pytest.mark.parametrize("text", ["", "K.T.", "PHÓ", "."])
def test_parse_refuses_what_is_not_a_form(text: str) -> None:
    with pytest.raises(WorkflowError, match="is not an authority form"):
        AuthorityForm.parse(text)


def test_a_form_is_its_printed_abbreviation() -> None:
    assert AuthorityForm.TUQ == "TUQ." and f"{AuthorityForm.KT} CHỦ TỊCH" == "KT. CHỦ TỊCH"
