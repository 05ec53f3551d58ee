"""The only code that writes a document's workflow state.

The engine (esign.workflow) decides whether an action may fire; this module
applies the decision to the database: it closes and opens step records,
moves the state, and records the audit event, in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from esign.errors import ActionNotAllowed, CommentRequired, WorkflowError
from esign.models import (
    Comment,
    Delegation,
    Document,
    DocumentVersion,
    Revision,
    StepRecord,
    User,
    UserRole,
    WorkflowInstance,
)
from esign.services import audit
from esign.services.context import Context
from esign.workflow import engine
from esign.workflow.definition import Definition, Transition

# Actions that do not sign: they only move the document or its assignees.
PLAIN_ACTIONS = frozenset({"return", "reject", "reassign"})


def definition_of(ctx: Context, instance: WorkflowInstance) -> Definition:
    return ctx.workflows.get(instance.definition_id, instance.definition_version)


def open_steps(session: Session, instance: WorkflowInstance, state: str | None = None) -> list[StepRecord]:
    query = select(StepRecord).where(StepRecord.instance_id == instance.id, StepRecord.status == "open")
    if state is not None:
        query = query.where(StepRecord.state == state)
    return list(session.scalars(query.order_by(StepRecord.id)))


def step_of(session: Session, instance: WorkflowInstance, actor: User) -> StepRecord | None:
    """The actor's open step on the document's current state, if any."""
    return session.scalar(
        select(StepRecord).where(
            StepRecord.instance_id == instance.id,
            StepRecord.state == instance.state,
            StepRecord.status == "open",
            StepRecord.assignee_id == actor.id,
        )
    )


def effective_roles(actor: User, step: StepRecord | None, definition: Definition) -> frozenset[str]:
    """The actor's roles, plus the step's role when they hold it by delegation."""
    roles = set(actor.roles)
    if step is not None and step.principal_id is not None:
        role = definition.states[step.state].role
        if role:
            roles.add(role)
    return frozenset(roles)


def active_delegation(session: Session, principal: User, role: str, at: datetime) -> Delegation | None:
    return session.scalar(
        select(Delegation)
        .where(
            Delegation.principal_id == principal.id,
            Delegation.role == role,
            Delegation.revoked.is_(False),
            Delegation.valid_from <= at,
            Delegation.valid_until > at,
        )
        .order_by(Delegation.id.desc())
        .limit(1)
    )


def open_step(
    session: Session,
    ctx: Context,
    instance: WorkflowInstance,
    version: DocumentVersion,
    definition: Definition,
    state: str,
    assignee: User,
    *,
    principal: User | None = None,
    authority: str = "",
) -> StepRecord:
    """Assign ``state`` to ``assignee``; a standing delegation redirects it to the delegate."""
    now = ctx.now()
    spec = definition.states[state]
    if principal is None and spec.role:
        delegation = active_delegation(session, assignee, spec.role, now)
        if delegation is not None:
            principal, assignee, authority = assignee, delegation.delegate, delegation.authority
    if authority:
        engine.check_authority(definition, state, authority)
    step = StepRecord(
        instance_id=instance.id,
        document_id=instance.document_id,
        unit_id=instance.document.unit_id,
        version_id=version.id,
        state=state,
        assignee_id=assignee.id,
        principal_id=principal.id if principal else None,
        authority=authority,
        assigned_at=now,
        due_at=ctx.calendar.due_at(now, spec.deadline) if spec.deadline else None,
    )
    session.add(step)
    session.flush()
    return step


def unit_members(session: Session, unit_id: int, role: str) -> list[User]:
    return list(
        session.scalars(
            select(User)
            .join(UserRole, UserRole.user_id == User.id)
            .where(User.unit_id == unit_id, User.active, UserRole.role == role)
            .order_by(User.id)
        )
    )


def _enter_state(
    session: Session,
    ctx: Context,
    document: Document,
    instance: WorkflowInstance,
    version: DocumentVersion,
    definition: Definition,
    state: str,
    assignees: Sequence[User] = (),
) -> None:
    instance.state = state
    spec = definition.states[state]
    if spec.terminal:
        instance.ended_at = ctx.now()
        return
    people = list(assignees) or unit_members(session, document.unit_id, spec.role)
    if not people:
        raise WorkflowError("No one in this unit holds the role %(role)s needed for the next step", role=spec.role)
    if spec.assignees == "one" and assignees:
        people = people[:1]
    for person in people:
        open_step(session, ctx, instance, version, definition, state, person)


def _close_others(session: Session, instance: WorkflowInstance, state: str, status: str, now: datetime) -> None:
    for other in open_steps(session, instance, state):
        other.status = status
        other.completed_at = now


def choose_advisers(session: Session, document: Document, usernames: Sequence[str]) -> list[User]:
    """The advisers an officer picked at submission, checked against the unit."""
    if not usernames:
        raise WorkflowError("Choose at least one adviser")
    people = []
    for name in dict.fromkeys(usernames):
        user = session.scalar(select(User).where(User.username == name, User.unit_id == document.unit_id))
        if user is None or not user.active or "adviser" not in user.roles:
            raise WorkflowError("%(name)s is not an adviser of this unit", name=name)
        people.append(user)
    return people


def advance_after_signature(
    session: Session,
    ctx: Context,
    document: Document,
    step: StepRecord,
    transition: Transition,
    actor: User,
    revision: Revision,
    *,
    comment: str = "",
    advisers: Sequence[str] = (),
) -> None:
    """Record a signed step and move the state when the step is complete."""
    now = ctx.now()
    instance = document.workflow
    definition = definition_of(ctx, instance)
    version = session.get(DocumentVersion, step.version_id)
    assert version is not None
    step.status, step.action, step.completed_at, step.revision_id = "done", transition.action, now, revision.id
    if comment.strip():
        session.add(Comment(document_id=document.id, version_id=version.id, author_id=actor.id,
                            action=transition.action, body=comment.strip(), created_at=now))
    remaining = open_steps(session, instance, step.state)
    assigned = len(remaining) + len(
        [s for s in session.scalars(select(StepRecord).where(
            StepRecord.instance_id == instance.id, StepRecord.state == step.state,
            StepRecord.version_id == version.id, StepRecord.status == "done"))]
    )
    moved = False
    if transition.target is not None and engine.quorum_reached(transition, assigned, assigned - len(remaining)):
        _close_others(session, instance, step.state, "cancelled", now)
        chosen = choose_advisers(session, document, advisers) if transition.target == "advise" else ()
        _enter_state(session, ctx, document, instance, version, definition, transition.target, chosen)
        moved = True
    document.updated_at = now
    audit.record(
        session,
        f"step.{transition.action}",
        actor=actor,
        document=document,
        state=step.state,
        to=instance.state if moved else step.state,
        revision=revision.index,
        version=version.number,
        sha256=revision.sha256,
        field=revision.field,
        authority=step.authority,
        principal=step.principal_id,
        comment=comment.strip(),
    )


def perform_action(
    ctx: Context,
    actor: User,
    document_id: int,
    action: str,
    *,
    comment: str = "",
    assignee: str | None = None,
    authority: str = "",
    idempotency_key: str | None = None,
) -> None:
    """Return, reject or reassign: the actions that move a document without a signature.

    A second call with the same ``idempotency_key`` (a double click) changes nothing.
    """
    from esign.services import idempotency
    from esign.services.access import get_visible
    from esign.services.documents import current_version, lock_document, restart_version

    if action not in PLAIN_ACTIONS:
        raise ActionNotAllowed("%(action)s needs a signature; use the signing page", action=action)
    with ctx.db.session() as session:
        # the lock first: a repeated request with the same key waits for the first one to commit
        document = lock_document(session, document_id)
        if idempotency_key and idempotency.previous(session, actor.id, "act", idempotency_key, action=action,
                                                    document_id=document_id) is not None:
            return
        actor = session.get(User, actor.id)
        get_visible(session, actor, document_id)
        instance = document.workflow
        definition = definition_of(ctx, instance)
        step = step_of(session, instance, actor)
        roles = effective_roles(actor, step, definition)
        transition = engine.fire(definition, instance.state, action, roles)
        if action != "reassign" and step is None:
            raise ActionNotAllowed("This step is not assigned to you")
        if transition.comment == "required" and not comment.strip():
            raise CommentRequired("Write the reason: it is required for this action")
        now = ctx.now()
        version = current_version(session, document)
        state_before = instance.state
        details: dict[str, object] = {}
        if action == "return":
            _close_others(session, instance, instance.state, "returned", now)
            new_version = restart_version(session, ctx, document, actor, comment)
            drafter = session.get(User, document.created_by_id)
            _enter_state(session, ctx, document, instance, new_version, definition, definition.initial, [drafter])
            details["new_version"] = new_version.number
        elif action == "reject":
            _close_others(session, instance, instance.state, "rejected", now)
            _enter_state(session, ctx, document, instance, version, definition, transition.target)
        else:  # reassign
            if not assignee:
                raise WorkflowError("Choose who takes the step over")
            target = session.scalar(select(User).where(User.username == assignee, User.unit_id == document.unit_id))
            if target is None or not target.active:
                raise WorkflowError("%(name)s is not an active member of this unit", name=assignee)
            spec = definition.states[instance.state]
            from_step = step or (open_steps(session, instance, instance.state) or [None])[0]
            if from_step is None:
                raise WorkflowError("This step has no open assignment to hand over")
            principal = None
            if authority:
                principal = session.get(User, from_step.principal_id or from_step.assignee_id)
            elif spec.role not in target.roles:
                raise WorkflowError(
                    "%(name)s does not hold the role %(role)s; choose an authority form to delegate",
                    name=target.full_name, role=spec.role,
                )
            from_step.status, from_step.completed_at, from_step.action = "reassigned", now, action
            open_step(session, ctx, instance, version, definition, instance.state, target,
                      principal=principal, authority=authority)
            details.update(assignee=target.username, authority=authority,
                           previous=session.get(User, from_step.assignee_id).username)
        if comment.strip():
            session.add(Comment(document_id=document.id, version_id=version.id, author_id=actor.id,
                                action=action, body=comment.strip(), created_at=now))
        document.updated_at = now
        if idempotency_key:
            idempotency.claim(session, actor.id, "act", idempotency_key, action=action, document_id=document_id)
        audit.record(session, f"step.{action}", actor=actor, document=document, state=state_before,
                     to=instance.state, comment=comment.strip(), **details)
