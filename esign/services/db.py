"""Database engine and sessions.

SQLite is the embedded default; PostgreSQL by URL. On SQLite every connection
gets foreign keys, WAL and a busy timeout, so that writers queue rather than
fail while one of them holds the write lock. On PostgreSQL a connection the
server dropped (a restart, a fail-over) is noticed and replaced when it is
taken from the pool after a pause; the web layer answers 503 while no
connection can be made.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

from esign.config import Settings

#: seconds to wait for PostgreSQL to accept a new connection
CONNECT_TIMEOUT = 5
#: a pooled connection unused for longer is checked with a round trip before it is handed out
PING_AFTER_IDLE_SECONDS = 2.0


def make_engine(url: str, *, echo: bool = False) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, echo=echo, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    # a database that does not answer fails the request within seconds rather than holding its thread
    connect_args = {"connect_timeout": CONNECT_TIMEOUT} if parsed.get_backend_name() == "postgresql" else {}
    engine = create_engine(url, echo=echo, connect_args=connect_args)
    _ping_idle_connections(engine)
    return engine


def _ping_idle_connections(engine: Engine) -> None:
    """Replace a pooled connection the server dropped before it is used, if it sat idle.

    A page takes connections from the pool several times; a round trip on every
    checkout (``pool_pre_ping``) costs a page under load more than its queries,
    since each round trip waits for the interpreter lock again. A connection
    used in the last seconds is handed out as it is: if the server dropped it
    since, the query fails, the request answers 503 and the pool discards its
    connections, as it does for a connection lost in mid-request.
    """

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.pop("idle_since", None)
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            dbapi_connection.rollback()
        except engine.dialect.loaded_dbapi.Error as e:
            raise DisconnectionError("the database closed this connection") from e


class Database:
    """An engine and a session factory; one per app."""

    def __init__(self, settings: Settings) -> None:
        self.engine = make_engine(settings.database.url, echo=settings.database.echo)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose transaction commits on success and rolls back on error."""
        with self.sessions() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
