"""Fault injection for the crash tests: the process kills itself at a named point.

``ESIGN_FAULT_POINT=signing.before_commit`` makes a development or test
server SIGKILL itself when it reaches that point of a signing step, so a test
can prove that nothing is lost there. Without the variable, or in production
(where the configuration refuses to load with it set), a point does nothing.
"""

from __future__ import annotations

import os
import signal

from sqlalchemy import event
from sqlalchemy.orm import Session

from esign.config import Settings

ENV = "ESIGN_FAULT_POINT"

#: the points of a signing step, in the order a step reaches them
POINTS = (
    "signing.prepare_before_commit",  # prepared PDF written, request not yet committed
    "signing.after_prepare",  # request committed, the device not yet told (a device the server
    #                           holds signs first: then this is the commit of the revision too)
    "signing.value_received",  # the device's value arrived, nothing embedded yet
    "signing.before_commit",  # value embedded, revision blob fsynced, transaction not committed
    "signing.after_commit",  # revision committed, the answer not yet sent
)


def point(settings: Settings, name: str) -> None:
    """Die here with SIGKILL if ``ESIGN_FAULT_POINT`` names this point (never in production)."""
    if os.environ.get(ENV) == name and not settings.is_production:
        os.kill(os.getpid(), signal.SIGKILL)


def on_commit(session: Session, settings: Settings, name: str) -> None:
    """Die just after ``session``'s transaction commits, if ``ESIGN_FAULT_POINT`` names this point."""
    if os.environ.get(ENV) == name and not settings.is_production:
        event.listen(session, "after_commit", lambda _session: os.kill(os.getpid(), signal.SIGKILL), once=True)
