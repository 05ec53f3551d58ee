"""Loading workflow definitions: the real one, the registry, and every refusal naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from esign.errors import DefinitionError
from esign.workflow.authority import AuthorityForm
from esign.workflow.definition import (
    Deadline,
    Definition,
    Label,
    Registry,
    load_definition,
    load_registry,
)

from .conftest import MEMO, WORKFLOWS

MEMO_TEXT = MEMO.read_text(encoding="utf-8")

MINIMAL = """\
id = "mini"
version = 1
name = { vi = "Nhỏ", en = "Mini" }
initial = "draft"

[states.draft]
name = { vi = "Dự thảo", en = "Draft" }
role = "officer"

[states.done]
name = { vi = "Xong", en = "Done" }
terminal = true

[[transitions]]
action = "finish"
from = ["draft"]
to = "done"
roles = ["officer"]
label = { vi = "Xong", en = "Finish" }
"""


# --- the real definition ---------------------------------------------------------


def test_advisory_memo_loads_with_states_in_file_order(memo: Definition) -> None:
    assert (memo.id, memo.version, memo.initial) == ("advisory-memo", 1, "draft")
    assert list(memo.states) == ["draft", "advise", "approve", "issue", "issued", "rejected"]
    assert dict(memo.name) == {"vi": "Tờ trình xin ý kiến", "en": "Advisory memo"}
    assert memo.source == str(MEMO)


def test_advisory_memo_states_carry_roles_assignees_authority_and_deadlines(
    memo: Definition,
) -> None:
    advise, approve, issue = memo.states["advise"], memo.states["approve"], memo.states["issue"]
    assert (advise.role, advise.assignees, advise.deadline) == (
        "adviser",
        "many",
        Deadline(working_days=3),
    )
    assert approve.authority == (AuthorityForm.TM, AuthorityForm.KT, AuthorityForm.Q)
    assert issue.deadline == Deadline(working_hours=8)
    assert memo.states["issued"].terminal and memo.states["issued"].role is None
    assert not memo.states["draft"].terminal


def test_advisory_memo_fields_keep_declaration_order(memo: Definition) -> None:
    assert [f.name for f in memo.fields] == [
        "drafter",
        "adviser_1",
        "adviser_2",
        "adviser_3",
        "chair",
        "seal",
        "number",
        "date",
    ]
    assert [f.name for f in memo.fields_in_slot("adviser")] == [
        "adviser_1",
        "adviser_2",
        "adviser_3",
    ]
    assert memo.field("number").kind == "text"
    with pytest.raises(KeyError):
        memo.field("nobody")


def test_advisory_memo_signature_steps(memo: Definition) -> None:
    steps = {t.action: t.signature for t in memo.transitions}
    assert (
        steps["submit"] is not None
        and steps["submit"].certify
        and steps["submit"].field == "drafter"
    )
    assert steps["advise"] is not None and (steps["advise"].slot, steps["advise"].field) == (
        "adviser",
        None,
    )
    assert steps["approve"] is not None
    assert (steps["approve"].lock, steps["approve"].lock_except) == (
        "all_except",
        ("number", "date"),
    )
    assert steps["issue"] is not None
    assert (steps["issue"].lock, steps["issue"].fill, steps["issue"].device) == (
        "all",
        ("number", "date"),
        "seal",
    )
    assert steps["return"] is None and steps["reject"] is None and steps["reassign"] is None


def test_advisory_memo_transitions(memo: Definition) -> None:
    by_action = {t.action: t for t in memo.transitions}
    assert by_action["return"].sources == frozenset({"advise", "approve", "issue"})
    assert by_action["return"].new_version and by_action["return"].comment == "required"
    assert by_action["advise"].quorum == "all"
    assert by_action["reassign"].target is None
    assert by_action["submit"].label.get("vi") == "Ký và gửi xin ý kiến"


def test_label_reads_like_a_dict() -> None:
    label = Label(vi="Dự thảo", en="Draft")
    assert dict(label) == {"vi": "Dự thảo", "en": "Draft"}
    assert label["en"] == "Draft" and label.get("fr") is None


def test_deadline_needs_exactly_one_positive_amount() -> None:
    for bad in (
        {},
        {"working_days": 1, "working_hours": 2},
        {"working_days": 0},
        {"working_hours": -1},
    ):
        with pytest.raises(ValueError):
            Deadline(**bad)


# --- the registry ----------------------------------------------------------------


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_registry_of_the_workflows_folder_skips_the_calendar() -> None:
    registry = load_registry(WORKFLOWS)
    assert registry.ids() == ("advisory-memo",)
    assert registry.latest("advisory-memo").version == 1
    assert ("advisory-memo", 1) in registry


def test_registry_gets_each_version_and_the_latest(tmp_path: Path) -> None:
    write(tmp_path, "mini.toml", MINIMAL)
    write(tmp_path, "mini-v2.toml", MINIMAL.replace("version = 1", "version = 2"))
    write(tmp_path, "calendar-vn.toml", "this is not a definition")
    registry = load_registry(tmp_path)
    assert [(d.id, d.version) for d in registry] == [("mini", 1), ("mini", 2)]
    assert len(registry) == 2
    assert registry.get("mini", 1).version == 1
    assert registry.latest("mini").version == 2


def test_registry_refuses_a_duplicate_id_and_version(tmp_path: Path) -> None:
    first = write(tmp_path, "a.toml", MINIMAL)
    second = write(tmp_path, "b.toml", MINIMAL)
    with pytest.raises(DefinitionError) as err:
        load_registry(tmp_path)
    assert str(err.value).startswith(f"{second}: version: ")
    assert str(first) in str(err.value)


def test_registry_names_a_missing_version() -> None:
    registry = Registry()
    with pytest.raises(DefinitionError, match="mini version 3 is not installed"):
        registry.get("mini", 3)
    with pytest.raises(DefinitionError, match="mini is not installed"):
        registry.latest("mini")


def test_registry_refuses_a_missing_or_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError, match="does not exist"):
        load_registry(tmp_path / "nowhere")
    with pytest.raises(DefinitionError, match="no workflow definition"):
        load_registry(tmp_path)


# --- refusals: each names the file and the key --------------------------------------

APPENDED_TRANSITION = """
[[transitions]]
action = "reject"
from = ["approve"]
to = "rejected"
roles = ["chair"]
label = { vi = "Từ chối", en = "Reject" }
"""

APPENDED_STATE = """
[states.archived]
name = { vi = "Lưu trữ", en = "Archived" }
terminal = true
"""

# (what to replace in the real file, by what, the key named, a fragment of the problem)
BROKEN_MEMO = {
    "unknown_state_in_to": (
        'to = "approve"',
        'to = "aprove"',
        "transitions[1].to",
        "unknown state 'aprove'",
    ),
    "unknown_state_in_from": (
        'from = ["approve"]\nto = "issue"',
        'from = ["aprove"]\nto = "issue"',
        "transitions[2].from[0]",
        "unknown state 'aprove'",
    ),
    "unknown_top_level_key": (
        "version = 1\n",
        "version = 1\ncolour = 1\n",
        "colour",
        "unknown key",
    ),
    "unknown_state_key": (
        '"Issued" }\nterminal = true',
        '"Issued" }\nterminal = true\ncolour = "red"',
        "states.issued.colour",
        "unknown key",
    ),
    "unknown_transition_key": (
        'quorum = "all"',
        'quorom = "all"',
        "transitions[1].quorom",
        "unknown key",
    ),
    "unknown_signature_key": (
        "certify = true",
        "certfy = true",
        "transitions[0].signature.certfy",
        "unknown key",
    ),
    "unknown_field_key": (
        '"number"\nkind = "text"',
        '"number"\nkind = "text"\nmax = 10',
        "fields[6].max",
        "unknown key",
    ),
    "unknown_label_key": (
        'en = "Draft" }',
        'en = "Draft", fr = "Brouillon" }',
        "states.draft.name.fr",
        "unknown key",
    ),
    "transition_without_roles": ('roles = ["clerk"]\n', "", "transitions[3].roles", "missing"),
    "transition_with_empty_roles": (
        'roles = ["officer"]',
        "roles = []",
        "transitions[0].roles",
        "must not be empty",
    ),
    "unknown_role_on_transition": (
        'roles = ["chair", "admin"]',
        'roles = ["chair", "mayor"]',
        "transitions[6].roles[1]",
        "'mayor' is not one of",
    ),
    "unknown_role_on_state": (
        'role = "clerk"',
        'role = "secretary"',
        "states.issue.role",
        "'secretary'",
    ),
    "duplicate_action_from": (
        None,
        APPENDED_TRANSITION,
        "transitions[7].from[0]",
        "action 'reject' from state 'approve' is already defined in transitions[5]",
    ),
    "unreachable_state": (
        None,
        APPENDED_STATE,
        "states.archived",
        "cannot be reached from the initial state",
    ),
    "non_terminal_state_without_way_out": (
        'en = "Rejected" }\nterminal = true',
        'en = "Rejected" }\nrole = "chair"',
        "states.rejected",
        "not terminal but no transition leaves it",
    ),
    "signature_field_not_declared": (
        'field = "chair"',
        'field = "chairman"',
        "transitions[2].signature.field",
        "'chairman' is not declared",
    ),
    "signature_field_of_wrong_kind": (
        'field = "seal"',
        'field = "number"',
        "transitions[3].signature.field",
        "'number' is a text field",
    ),
    "signature_slot_without_fields": (
        'slot = "adviser", stamp',
        'slot = "advisor", stamp',
        "transitions[1].signature.slot",
        "no signature field",
    ),
    "lock_except_unknown_field": (
        'lock_except = ["number", "date"]',
        'lock_except = ["number", "dat"]',
        "transitions[2].signature.lock_except[1]",
        "'dat' is not declared",
    ),
    "lock_except_without_all_except": (
        'lock = "all_except", ',
        'lock = "all", ',
        "transitions[2].signature.lock_except",
        'only with lock = "all_except"',
    ),
    "unknown_lock": (
        'lock = "all", fill',
        'lock = "everything", fill',
        "transitions[3].signature.lock",
        "'everything'",
    ),
    "fill_of_a_signature_field": (
        'fill = ["number", "date"]',
        'fill = ["number", "chair"]',
        "transitions[3].signature.fill[1]",
        "only text fields are filled",
    ),
    "unknown_stamp": (
        'stamp = "initials"',
        'stamp = "tiny"',
        "transitions[1].signature.stamp",
        "'tiny'",
    ),
    "unknown_device": (
        'device = "seal"',
        'device = "usb"',
        "transitions[3].signature.device",
        "'usb'",
    ),
    "certify_after_the_first_step": (
        'field = "chair", stamp',
        'field = "chair", certify = true, stamp',
        "transitions[2].signature.certify",
        "only from the initial state",
    ),
    "deadline_of_zero": (
        "working_hours = 8",
        "working_hours = 0",
        "states.issue.deadline.working_hours",
        "positive whole number",
    ),
    "deadline_fractional": (
        "working_days = 2 }\n\n[states.advise]",
        "working_days = 1.5 }\n\n[states.advise]",
        "states.draft.deadline.working_days",
        "positive whole number",
    ),
    "deadline_unknown_unit": (
        "working_hours = 8",
        "hours = 8",
        "states.issue.deadline.hours",
        "unknown key",
    ),
    "deadline_with_two_units": (
        "working_hours = 8",
        "working_hours = 8, working_days = 1",
        "states.issue.deadline",
        "exactly one",
    ),
    "bad_authority_form": ('"TL.", "TUQ."', '"TL.", "UQ."', "states.issue.authority[1]", "'UQ.'"),
    "authority_form_twice": (
        '"TL.", "TUQ."',
        '"TL.", "TL."',
        "states.issue.authority[1]",
        "listed twice",
    ),
    "version_zero": ("version = 1", "version = 0", "version", "positive whole number"),
    "version_as_text": ("version = 1", 'version = "1"', "version", "positive whole number"),
    "version_as_bool": ("version = 1", "version = true", "version", "positive whole number"),
    "unknown_initial_state": (
        'initial = "draft"',
        'initial = "drafting"',
        "initial",
        "unknown state 'drafting'",
    ),
    "terminal_state_with_role": (
        'en = "Issued" }\nterminal = true',
        'en = "Issued" }\nterminal = true\nrole = "clerk"',
        "states.issued.role",
        "a terminal state has no role",
    ),
    "non_terminal_state_without_role": (
        'role = "officer"\ndeadline',
        "deadline",
        "states.draft.role",
        "missing",
    ),
    "transition_from_terminal_state": (
        'from = ["approve"]\nto = "rejected"',
        'from = ["issued"]\nto = "rejected"',
        "transitions[5].from[0]",
        "'issued' is terminal",
    ),
    "both_to_and_stay": ("stay = true", 'stay = true\nto = "draft"', "transitions[6]", "either to"),
    "neither_to_nor_stay": ("stay = true\n", "", "transitions[6]", "either to"),
    "quorum_all_on_single_assignee_state": (
        'from = ["advise"]\nto = "approve"\nroles = ["adviser"]',
        'from = ["advise", "approve"]\nto = "approve"\nroles = ["adviser"]',
        "transitions[1].quorum",
        "assignees = \"many\" in state 'approve'",
    ),
    "new_version_not_to_initial": (
        'to = "draft"\nroles = ["adviser", "chair", "clerk"]',
        'to = "rejected"\nroles = ["adviser", "chair", "clerk"]',
        "transitions[4].new_version",
        "initial state 'draft'",
    ),
    "missing_label": (
        'label = { vi = "Không phê duyệt", en = "Reject" }',
        "",
        "transitions[5].label",
        "missing",
    ),
    "empty_label": ('en = "Reject" }', 'en = "" }', "transitions[5].label.en", "non-empty string"),
    "field_declared_twice": (
        'name = "adviser_2"',
        'name = "adviser_1"',
        "fields[2].name",
        "declared twice",
    ),
    "field_of_unknown_kind": (
        '"number"\nkind = "text"',
        '"number"\nkind = "checkbox"',
        "fields[6].kind",
        "'checkbox'",
    ),
    "field_name_with_a_dot": (
        'name = "adviser_3"',
        'name = "adviser.3"',
        "fields[3].name",
        "not a valid name",
    ),
    "bad_id": ('id = "advisory-memo"', 'id = "Advisory Memo"', "id", "not a valid name"),
}


@pytest.mark.parametrize("case", sorted(BROKEN_MEMO))
def test_load_refuses_a_broken_definition_naming_file_and_key(tmp_path: Path, case: str) -> None:
    old, new, key, fragment = BROKEN_MEMO[case]
    if old is None:
        text = MEMO_TEXT + new
    else:
        assert MEMO_TEXT.count(old) == 1, f"the case {case} must change exactly one place"
        text = MEMO_TEXT.replace(old, new)
    path = write(tmp_path, "broken.toml", text)
    with pytest.raises(DefinitionError) as err:
        load_definition(path)
    assert err.value.params["key"] == key
    assert str(err.value).startswith(f"{path}: {key}: ")
    assert fragment in str(err.value)


def test_load_refuses_a_state_that_never_reaches_a_terminal_one(tmp_path: Path) -> None:
    trap = (
        MINIMAL
        + """
[states.limbo]
name = { vi = "Treo", en = "Limbo" }
role = "officer"

[[transitions]]
action = "park"
from = ["draft"]
to = "limbo"
roles = ["officer"]
label = { vi = "Treo", en = "Park" }

[[transitions]]
action = "stir"
from = ["limbo"]
to = "limbo"
roles = ["officer"]
label = { vi = "Khuấy", en = "Stir" }
"""
    )
    path = write(tmp_path, "trap.toml", trap)
    with pytest.raises(
        DefinitionError, match=r"trap.toml: states.limbo: no terminal state can be reached"
    ):
        load_definition(path)


def test_load_refuses_a_state_its_own_role_cannot_move(tmp_path: Path) -> None:
    path = write(tmp_path, "mini.toml", MINIMAL.replace('roles = ["officer"]', 'roles = ["chair"]'))
    with pytest.raises(
        DefinitionError, match=r"mini.toml: states.draft.role: no transition out of state 'draft'"
    ):
        load_definition(path)


def test_load_refuses_a_definition_without_transitions(tmp_path: Path) -> None:
    text = MINIMAL.split("[[transitions]]")[0].replace(
        'initial = "draft"', 'initial = "draft"\ntransitions = []'
    )
    path = write(tmp_path, "mini.toml", text)
    with pytest.raises(DefinitionError, match=r"mini.toml: transitions: expected at least one"):
        load_definition(path)


def test_load_names_the_file_of_invalid_toml(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.toml", "id = \n")
    with pytest.raises(DefinitionError, match=r"bad.toml: is not valid TOML"):
        load_definition(path)


def test_load_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError, match=r"absent.toml: cannot be read"):
        load_definition(tmp_path / "absent.toml")


def test_minimal_definition_loads_with_defaults(tmp_path: Path) -> None:
    d = load_definition(write(tmp_path, "mini.toml", MINIMAL))
    (finish,) = d.transitions
    assert (finish.quorum, finish.comment, finish.new_version, finish.signature) == (
        "one",
        "none",
        False,
        None,
    )
    assert (
        d.fields == ()
        and d.states["draft"].assignees == "one"
        and d.states["draft"].deadline is None
    )
