"""The state machine on the real advisory-memo definition: no app, no database, no clock."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import esign.workflow
from esign.errors import ActionNotAllowed, CommentRequired, WorkflowError
from esign.workflow import engine
from esign.workflow.authority import AuthorityForm
from esign.workflow.definition import Definition, Transition

# (state, action, role, target): the whole of the happy path
HAPPY_PATH = [
    ("draft", "submit", "officer", "advise"),
    ("advise", "advise", "adviser", "approve"),
    ("approve", "approve", "chair", "issue"),
    ("issue", "issue", "clerk", "issued"),
]


@pytest.mark.parametrize(("state", "action", "role", "target"), HAPPY_PATH)
def test_fire_happy_path_step(
    memo: Definition, state: str, action: str, role: str, target: str
) -> None:
    transition = engine.fire(memo, state, action, {role})
    assert (transition.action, transition.target) == (action, target)
    assert transition.signature is not None


def test_happy_path_walks_from_draft_to_issued(memo: Definition) -> None:
    state = memo.initial
    for _, action, role, _ in HAPPY_PATH:
        transition = engine.fire(memo, state, action, [role])
        assert transition.target is not None
        state = transition.target
    assert state == "issued" and memo.states[state].terminal


@pytest.mark.parametrize(
    ("state", "role"), [("advise", "adviser"), ("approve", "chair"), ("issue", "clerk")]
)
def test_return_for_revision_goes_back_to_draft_with_a_new_version(
    memo: Definition, state: str, role: str
) -> None:
    transition = engine.fire(memo, state, "return", {role})
    assert transition.target == memo.initial == "draft"
    assert (
        transition.new_version and transition.comment == "required" and transition.signature is None
    )


def test_chair_rejects_to_a_terminal_state(memo: Definition) -> None:
    transition = engine.fire(memo, "approve", "reject", {"chair"})
    assert transition.target == "rejected" and memo.states["rejected"].terminal


@pytest.mark.parametrize("state", ["draft", "advise", "approve", "issue"])
@pytest.mark.parametrize("role", ["chair", "admin"])
def test_reassign_keeps_the_state(memo: Definition, state: str, role: str) -> None:
    assert engine.fire(memo, state, "reassign", {role}).target is None


def test_fire_rejects_wrong_role(memo: Definition) -> None:
    with pytest.raises(ActionNotAllowed) as err:
        engine.fire(memo, "approve", "approve", {"officer", "adviser"})
    assert (
        str(err.value)
        == "Only chair may sign approval in the step Approval; you act as adviser, officer"
    )


def test_fire_rejects_wrong_role_listing_everyone_allowed(memo: Definition) -> None:
    with pytest.raises(
        ActionNotAllowed, match="Only adviser, chair or clerk may return for revision"
    ):
        engine.fire(memo, "approve", "return", {"officer"})


def test_fire_is_closed_without_roles(memo: Definition) -> None:
    with pytest.raises(ActionNotAllowed, match="you act as no role"):
        engine.fire(memo, "draft", "submit", set())


def test_fire_rejects_unknown_action(memo: Definition) -> None:
    with pytest.raises(
        ActionNotAllowed, match="There is no action publish in the workflow Advisory memo"
    ):
        engine.fire(memo, "draft", "publish", {"officer", "chair", "clerk", "admin"})


def test_fire_rejects_action_from_wrong_state(memo: Definition) -> None:
    with pytest.raises(
        ActionNotAllowed, match="The action approve is not possible in the step Draft"
    ):
        engine.fire(memo, "draft", "approve", {"chair"})


def test_fire_rejects_return_from_draft(memo: Definition) -> None:
    with pytest.raises(ActionNotAllowed, match="not possible in the step Draft"):
        engine.fire(memo, "draft", "return", {"adviser", "chair", "clerk"})


@pytest.mark.parametrize("state", ["issued", "rejected"])
def test_fire_rejects_every_action_in_a_terminal_state(memo: Definition, state: str) -> None:
    with pytest.raises(ActionNotAllowed, match="no action is possible any more"):
        engine.fire(memo, state, "reassign", {"chair", "admin"})


def test_fire_on_a_state_the_definition_does_not_know_is_a_workflow_error(memo: Definition) -> None:
    with pytest.raises(WorkflowError, match="has no state archived") as err:
        engine.fire(memo, "archived", "submit", {"officer"})
    assert not isinstance(err.value, ActionNotAllowed)


def test_fire_accepts_any_one_of_the_actors_roles(memo: Definition) -> None:
    assert (
        engine.fire(memo, "approve", "approve", frozenset({"officer", "chair"})).action == "approve"
    )


def test_available_actions_for_the_chair_in_approval(memo: Definition) -> None:
    actions = engine.available_actions(memo, "approve", {"chair"})
    assert [t.action for t in actions] == ["approve", "return", "reject", "reassign"]


@pytest.mark.parametrize(
    ("state", "roles", "expected"),
    [
        ("draft", {"officer"}, ["submit"]),
        ("advise", {"adviser"}, ["advise", "return"]),
        ("issue", {"clerk"}, ["issue", "return"]),
        ("approve", {"officer"}, []),
        ("draft", {"admin"}, ["reassign"]),
        ("issued", {"chair", "admin"}, []),
        ("nowhere", {"chair"}, []),
        ("approve", set(), []),
    ],
)
def test_available_actions(
    memo: Definition, state: str, roles: set[str], expected: list[str]
) -> None:
    assert [t.action for t in engine.available_actions(memo, state, roles)] == expected


# --- comments ----------------------------------------------------------------------


def by_action(memo: Definition, action: str) -> Transition:
    return next(t for t in memo.transitions if t.action == action)


@pytest.mark.parametrize("action", ["return", "reject", "reassign"])
def test_comment_required_flag_refuses_a_blank_comment(memo: Definition, action: str) -> None:
    transition = by_action(memo, action)
    assert transition.comment == "required"
    for blank in (None, "", "  \n\t"):
        with pytest.raises(CommentRequired, match="Write a comment: it is required"):
            engine.check_comment(transition, blank)


def test_comment_required_flag_keeps_the_comment_stripped(memo: Definition) -> None:
    assert (
        engine.check_comment(by_action(memo, "return"), "  Thiếu số liệu quý III \n")
        == "Thiếu số liệu quý III"
    )


@pytest.mark.parametrize("action", ["submit", "advise", "approve", "issue"])
def test_signing_actions_need_no_comment(memo: Definition, action: str) -> None:
    transition = by_action(memo, action)
    assert transition.comment == "none"
    assert engine.check_comment(transition, "") == ""


# --- parallel advisers ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("assigned", "done", "reached"),
    [(1, 0, False), (1, 1, True), (3, 1, False), (3, 2, False), (3, 3, True)],
)
def test_quorum_all_needs_every_adviser(
    memo: Definition, assigned: int, done: int, reached: bool
) -> None:
    assert engine.quorum_reached(by_action(memo, "advise"), assigned, done) is reached


@pytest.mark.parametrize(
    ("assigned", "done", "reached"), [(1, 0, False), (1, 1, True), (2, 1, True)]
)
def test_quorum_one_needs_one(memo: Definition, assigned: int, done: int, reached: bool) -> None:
    assert engine.quorum_reached(by_action(memo, "approve"), assigned, done) is reached


@pytest.mark.parametrize(("assigned", "done"), [(0, 0), (2, 3), (2, -1)])
def test_quorum_refuses_impossible_counts(memo: Definition, assigned: int, done: int) -> None:
    with pytest.raises(WorkflowError, match="that cannot be"):
        engine.quorum_reached(by_action(memo, "advise"), assigned, done)


# --- signature fields ---------------------------------------------------------------


def test_advisers_get_adviser_fields_in_signing_order(memo: Definition) -> None:
    advise = by_action(memo, "advise")
    used: set[str] = {"drafter"}
    order = []
    for _ in range(3):
        field = engine.signature_field_for(memo, advise, used)
        order.append(field)
        used.add(field)
    assert order == ["adviser_1", "adviser_2", "adviser_3"]


def test_adviser_field_allocation_fills_a_gap_first(memo: Definition) -> None:
    assert engine.signature_field_for(memo, by_action(memo, "advise"), {"adviser_2"}) == "adviser_1"


def test_adviser_field_allocation_refuses_a_fourth_adviser(memo: Definition) -> None:
    with pytest.raises(WorkflowError, match="All 3 adviser signature fields"):
        engine.signature_field_for(
            memo, by_action(memo, "advise"), {"adviser_1", "adviser_2", "adviser_3"}
        )


def test_fixed_signature_field_is_returned_until_signed(memo: Definition) -> None:
    approve = by_action(memo, "approve")
    assert engine.signature_field_for(memo, approve, {"drafter", "adviser_1"}) == "chair"
    with pytest.raises(WorkflowError, match="chair is already signed"):
        engine.signature_field_for(memo, approve, {"chair"})


def test_signature_field_for_an_unsigned_action_is_an_error(memo: Definition) -> None:
    with pytest.raises(WorkflowError, match="return is not signed"):
        engine.signature_field_for(memo, by_action(memo, "return"), set())


# --- authority forms in a step --------------------------------------------------------


@pytest.mark.parametrize("form", ["TM.", "KT.", "Q.", AuthorityForm.KT, "kt"])
def test_check_authority_accepts_the_forms_of_the_state(memo: Definition, form: str) -> None:
    assert engine.check_authority(memo, "approve", form) in memo.states["approve"].authority


def test_check_authority_refuses_a_form_the_state_does_not_allow(memo: Definition) -> None:
    with pytest.raises(ActionNotAllowed, match=r"cannot be signed TL\.; allowed: TM\., KT\., Q\."):
        engine.check_authority(memo, "approve", "TL.")


def test_check_authority_refuses_any_form_where_none_is_listed(memo: Definition) -> None:
    with pytest.raises(ActionNotAllowed, match="The step Draft cannot be signed for someone else"):
        engine.check_authority(memo, "draft", "KT.")


def test_check_authority_refuses_an_unknown_form(memo: Definition) -> None:
    with pytest.raises(WorkflowError, match="UQ. is not an authority form"):
        engine.check_authority(memo, "issue", "UQ.")


# --- purity -------------------------------------------------------------------------


def test_workflow_package_imports_only_the_standard_library_and_esign_errors() -> None:
    package = Path(esign.workflow.__file__).parent
    allowed = set(sys.stdlib_module_names) | {"esign"}
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] in allowed, f"{path.name} imports {name}"
                if name.startswith("esign"):
                    assert name == "esign.errors" or name.startswith("esign.workflow"), (
                        f"{path.name} imports {name}"
                    )


def test_engine_reads_no_clock_and_does_no_io() -> None:
    source = Path(engine.__file__).read_text(encoding="utf-8")
    tree = ast.parse(source)
    imported = {
        a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
    }
    imported |= {
        n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module
    }
    assert not imported & {"datetime", "time", "os", "pathlib", "io", "random", "tomllib"}
    called = {
        n.func.id
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
    }
    assert "open" not in called
