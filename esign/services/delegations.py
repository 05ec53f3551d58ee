"""Standing delegations: a principal's role handed to a delegate for a period.

While a delegation is active, steps that would be assigned to the principal go
to the delegate, who signs with the authority form (e.g. "KT. CHỦ TỊCH" above
their own title); the form is recorded on the step and in the audit trail.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from esign.errors import WorkflowError
from esign.models import Delegation, User
from esign.services import audit
from esign.services.users import require_admin
from esign.workflow.authority import AuthorityForm


def create_delegation(
    session: Session,
    actor: User | None,
    *,
    principal: User,
    delegate: User,
    role: str,
    authority: str,
    valid_from: datetime,
    valid_until: datetime,
) -> Delegation:
    """Record that ``delegate`` acts for ``principal`` in ``role`` (admin, or the principal)."""
    if actor is not None and actor.id != principal.id:
        require_admin(actor)
    form = AuthorityForm.parse(authority)
    if principal.id == delegate.id:
        raise WorkflowError("A person cannot delegate to themselves")
    if principal.unit_id != delegate.unit_id:
        raise WorkflowError("A delegate must belong to the same unit")
    if role not in principal.roles:
        raise WorkflowError("%(name)s does not hold the role %(role)s", name=principal.full_name, role=role)
    if valid_until <= valid_from:
        raise WorkflowError("A delegation must end after it starts")
    delegation = Delegation(
        unit_id=principal.unit_id,
        principal_id=principal.id,
        delegate_id=delegate.id,
        role=role,
        authority=str(form),
        valid_from=valid_from,
        valid_until=valid_until,
        created_by_id=(actor or principal).id,
    )
    session.add(delegation)
    session.flush()
    audit.record(session, "delegation.created", actor=actor, unit_id=principal.unit_id,
                 principal=principal.username, delegate=delegate.username, role=role, authority=str(form),
                 valid_from=valid_from.isoformat(), valid_until=valid_until.isoformat())
    return delegation


def revoke_delegation(session: Session, actor: User | None, delegation: Delegation) -> None:
    if actor is not None and actor.id != delegation.principal_id:
        require_admin(actor)
    delegation.revoked = True
    audit.record(session, "delegation.revoked", actor=actor, unit_id=delegation.unit_id,
                 delegation=delegation.id)
