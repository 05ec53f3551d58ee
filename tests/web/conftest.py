"""Fixtures of the web tests: the app on the demo ward (SQLite), a test client, signing in.

``app`` is defined here until tests/conftest.py provides one.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from esign.services.demo import DEMO_PASSWORD

CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


@pytest.fixture
def app(sqlite_demo) -> Iterator[Flask]:  # type: ignore[no-untyped-def]
    from esign.web import create_app

    yield create_app(ctx=sqlite_demo)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def csrf_token(client: FlaskClient, path: str = "/login") -> str:
    """The CSRF token of the client's session, read from a page."""
    page = client.get(path)
    found = CSRF_META.search(page.get_data(as_text=True))
    assert found, f"no CSRF token on {path}"
    return found.group(1)


def login(client: FlaskClient, username: str, password: str = DEMO_PASSWORD) -> None:
    token = csrf_token(client)
    response = client.post("/login", data={"username": username, "password": password, "csrf_token": token})
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
