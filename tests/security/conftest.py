"""Fixtures of the security tests: the app on the demo ward, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from esign.models import User, WorkflowInstance
from esign.services.context import Context
from tests.web.conftest import csrf_token, login

__all__ = ["csrf_token", "login", "state_of", "user_named"]


@pytest.fixture
def demo_app(demo: Context) -> Iterator[Flask]:
    from esign.web import create_app

    yield create_app(ctx=demo)


def user_named(ctx: Context, username: str) -> User:
    with ctx.db.session() as session:
        user = session.scalar(select(User).where(User.username == username))
        assert user is not None
        session.expunge(user)
        return user


def state_of(ctx: Context, document_id: int) -> str:
    with ctx.db.session() as session:
        return str(session.scalar(select(WorkflowInstance.state).where(WorkflowInstance.document_id == document_id)))


def age_session(client: FlaskClient, *, seconds: float, keys: tuple[str, ...]) -> None:
    """Move the session's timestamps ``keys`` back by ``seconds``: time passing, without sleeping."""
    with client.session_transaction() as session:
        for key in keys:
            session[key] = session[key] - seconds
