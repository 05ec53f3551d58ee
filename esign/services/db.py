"""Database engine and sessions.

SQLite is the embedded default; PostgreSQL by URL. On SQLite every connection
gets foreign keys, WAL and a busy timeout, so that writers queue rather than
fail while one of them holds the write lock. On PostgreSQL a connection the
server dropped (a restart, a fail-over) is noticed and replaced when it is
taken from the pool; the web layer answers 503 while no connection can be made.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from esign.config import Settings

#: seconds to wait for PostgreSQL to accept a new connection
CONNECT_TIMEOUT = 5


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
    # a pooled connection the server dropped is replaced before use (pre-ping); a database that
    # does not answer fails the request within seconds rather than holding its thread
    connect_args = {"connect_timeout": CONNECT_TIMEOUT} if parsed.get_backend_name() == "postgresql" else {}
    return create_engine(url, echo=echo, pool_pre_ping=True, connect_args=connect_args)


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
