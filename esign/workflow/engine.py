"""The state machine: which action may fire, and what it needs. Pure: no clock, no I/O.

``services/routing.py`` is the only code that writes a document's state; it
asks :func:`fire` first. Transitions are closed unless a role is named: an
actor whose roles are not listed on the transition cannot fire it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from esign.errors import ActionNotAllowed, CommentRequired, WorkflowError
from esign.workflow.authority import AuthorityForm, authority_lines
from esign.workflow.definition import Definition, State, Transition

__all__ = [
    "AuthorityForm",
    "authority_lines",
    "available_actions",
    "check_authority",
    "check_comment",
    "fire",
    "quorum_reached",
    "signature_field_for",
]


def fire(definition: Definition, state: str, action: str, roles: Iterable[str]) -> Transition:
    """The transition ``action`` fires from ``state`` for an actor holding ``roles``.

    Raises ActionNotAllowed when the action does not exist in the workflow,
    cannot fire from ``state``, or none of ``roles`` may fire it.
    """
    spec = _state(definition, state)
    held = frozenset(roles)
    if not any(t.action == action for t in definition.transitions):
        raise ActionNotAllowed(
            "There is no action %(action)s in the workflow %(workflow)s",
            action=action,
            workflow=definition.name.en,
        )
    if spec.terminal:
        raise ActionNotAllowed(
            "The document is %(state)s: no action is possible any more", state=spec.name.en.lower()
        )
    for transition in definition.transitions_from(state):
        if transition.action != action:
            continue
        if transition.roles & held:
            return transition
        raise ActionNotAllowed(
            "Only %(roles)s may %(action)s in the step %(state)s; you act as %(held)s",
            roles=_or(sorted(transition.roles)),
            action=transition.label.en.lower(),
            state=spec.name.en,
            held=", ".join(sorted(held)) or "no role",
        )
    raise ActionNotAllowed(
        "The action %(action)s is not possible in the step %(state)s",
        action=action,
        state=spec.name.en,
    )


def available_actions(
    definition: Definition, state: str, roles: Iterable[str]
) -> tuple[Transition, ...]:
    """The transitions an actor holding ``roles`` may fire in ``state``, in file order (the buttons)."""
    held = frozenset(roles)
    if state not in definition.states:
        return ()
    return tuple(t for t in definition.transitions_from(state) if t.roles & held)


def quorum_reached(transition: Transition, assigned: int, done: int) -> bool:
    """Whether ``done`` of the ``assigned`` parallel assignees are enough for the state to move on."""
    if assigned < 1 or done < 0 or done > assigned:
        raise WorkflowError(
            "A step counts %(done)s signatures done out of %(assigned)s assigned; that cannot be",
            done=done,
            assigned=assigned,
        )
    if transition.quorum == "all":
        return done == assigned
    return done >= 1


def check_comment(transition: Transition, comment: str | None) -> str:
    """The comment, stripped; CommentRequired when the transition needs one and it is blank."""
    text = (comment or "").strip()
    if transition.comment == "required" and not text:
        raise CommentRequired(
            "Write a comment: it is required to %(action)s", action=transition.label.en.lower()
        )
    return text


def signature_field_for(
    definition: Definition, transition: Transition, used_fields: Collection[str]
) -> str:
    """The signature field this transition signs, given the fields already signed in this version.

    A fixed ``field`` is returned as it is; a ``slot`` gives its next free
    field in declaration order, so advisers get adviser_1, adviser_2, ... in
    the order they sign. Raises WorkflowError when the transition is not
    signed or no field is left.
    """
    step = transition.signature
    if step is None:
        raise WorkflowError("The action %(action)s is not signed", action=transition.action)
    if step.field is not None:
        if step.field in used_fields:
            raise WorkflowError(
                "The signature field %(field)s is already signed in this version", field=step.field
            )
        return step.field
    assert step.slot is not None  # the loader requires field or slot
    fields = definition.fields_in_slot(step.slot)
    for f in fields:
        if f.name not in used_fields:
            return f.name
    raise WorkflowError(
        "All %(count)s %(slot)s signature fields of this document are signed; "
        "the workflow allows no more %(slot)s signatures",
        count=len(fields),
        slot=step.slot,
    )


def check_authority(definition: Definition, state: str, form: AuthorityForm | str) -> AuthorityForm:
    """The authority form, if it may be used for the step ``state``; ActionNotAllowed if not."""
    spec = _state(definition, state)
    parsed = AuthorityForm.parse(form)
    if parsed not in spec.authority:
        allowed = ", ".join(f.value for f in spec.authority)
        if not allowed:
            raise ActionNotAllowed(
                "The step %(state)s cannot be signed for someone else (%(form)s)",
                state=spec.name.en,
                form=parsed.value,
            )
        raise ActionNotAllowed(
            "The step %(state)s cannot be signed %(form)s; allowed: %(allowed)s",
            state=spec.name.en,
            form=parsed.value,
            allowed=allowed,
        )
    return parsed


def _state(definition: Definition, state: str) -> State:
    try:
        return definition.states[state]
    except KeyError:
        # a stored state the definition does not know: data and definition disagree
        raise WorkflowError(
            "The workflow %(workflow)s version %(version)s has no state %(state)s",
            workflow=definition.id,
            version=definition.version,
            state=state,
        ) from None


def _or(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " or " + items[-1]
