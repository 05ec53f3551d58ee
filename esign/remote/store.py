"""The service's own SQLite database: access tokens, authorizations and the audit log.

Everything the service must remember across a restart lives here: a phone
confirmation that is pending when the service stops can be confirmed after it
starts again, and the client then completes. Nothing secret is stored in
clear: access tokens by their SHA-256, no PIN or OTP ever, and a SAD is not
stored at all (it is a MAC over the authorization id, see ``api.py``).
Signature values are not secret.

The audit log is append-only (SQLite triggers refuse UPDATE and DELETE) and
hash-chained: each row's hash covers the previous row's hash and its own
content, so a removed or edited row shows in :meth:`Store.check_audit`.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS access_tokens (
    token_sha256 TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS authorizations (
    id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    credential_id TEXT NOT NULL,
    owner TEXT NOT NULL,
    mode TEXT NOT NULL,             -- 'pin' (credentials/authorize with PIN) or 'phone'
    hash_algo TEXT NOT NULL,
    hashes TEXT NOT NULL,           -- JSON list of base64 hashes, in the client's order
    titles TEXT NOT NULL,           -- JSON list of document titles shown on the phone
    description TEXT NOT NULL,
    code TEXT NOT NULL,             -- short code shown on the phone and the desktop
    status TEXT NOT NULL,           -- pending, confirmed, declined, expired, failed, cancelled
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,       -- confirmation deadline
    decided_at REAL,
    sad_expires_at REAL,
    signatures TEXT,                -- JSON list of base64 values, made at confirmation
    used TEXT,                      -- JSON list of booleans: each hash is released once
    pin_failures INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS pin_failures (
    credential_id TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,      -- consecutive wrong PINs, over every authorization
    locked_until REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS totp_steps (
    username TEXT PRIMARY KEY,
    last_step INTEGER NOT NULL      -- a TOTP code is accepted once
);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    event TEXT NOT NULL,
    client_id TEXT NOT NULL DEFAULT '',
    credential_id TEXT NOT NULL DEFAULT '',
    authorization_id TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT '{}',
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""

GENESIS = "0" * 64


@dataclass(frozen=True)
class Authorization:
    id: str
    client_id: str
    credential_id: str
    owner: str
    mode: str
    hash_algo: str
    hashes: tuple[str, ...]
    titles: tuple[str, ...]
    description: str
    code: str
    status: str
    created_at: float
    expires_at: float
    decided_at: float | None
    sad_expires_at: float | None
    signatures: tuple[str, ...] | None
    used: tuple[bool, ...] | None
    pin_failures: int

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Authorization:
        data = dict(row)
        for key in ("hashes", "titles"):
            data[key] = tuple(json.loads(data[key]))
        for key in ("signatures", "used"):
            data[key] = tuple(json.loads(data[key])) if data[key] is not None else None
        return cls(**data)


def _audit_hash(prev: str, at: str, event: str, fields: tuple[str, str, str], detail: str) -> str:
    payload = json.dumps([prev, at, event, *fields, detail], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class Store:
    """A thin layer over sqlite3; one connection per operation, writes serialised."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._write_lock = threading.Lock()
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        return db

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        db = self._connect()
        try:
            yield db
        finally:
            db.close()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A transaction that holds the database's write lock from its first statement."""
        with self._write_lock:
            db = self._connect()
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    yield db
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
            finally:
                db.close()

    # -- access tokens

    def add_token(self, token_sha256: str, client_id: str, expires_at: float) -> None:
        with self.write() as db:
            db.execute("DELETE FROM access_tokens WHERE expires_at < ?", (expires_at - 86400 * 7,))
            db.execute(
                "INSERT INTO access_tokens VALUES (?, ?, ?)", (token_sha256, client_id, expires_at)
            )

    def token_client(self, token_sha256: str, now: float) -> str | None:
        with self.read() as db:
            row = db.execute(
                "SELECT client_id FROM access_tokens WHERE token_sha256 = ? AND expires_at > ?",
                (token_sha256, now),
            ).fetchone()
        return row["client_id"] if row else None

    def revoke_token(self, token_sha256: str) -> None:
        with self.write() as db:
            db.execute("DELETE FROM access_tokens WHERE token_sha256 = ?", (token_sha256,))

    # -- authorizations

    def add_authorization(self, db: sqlite3.Connection, **values: Any) -> None:
        for key in ("hashes", "titles", "signatures", "used"):
            if values.get(key) is not None:
                values[key] = json.dumps(list(values[key]), ensure_ascii=False)
        columns = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        db.execute(
            f"INSERT INTO authorizations ({columns}) VALUES ({marks})", tuple(values.values())
        )

    def update_authorization(self, db: sqlite3.Connection, auth_id: str, **values: Any) -> None:
        for key in ("signatures", "used"):
            if values.get(key) is not None:
                values[key] = json.dumps(list(values[key]))
        assignments = ", ".join(f"{k} = ?" for k in values)
        db.execute(
            f"UPDATE authorizations SET {assignments} WHERE id = ?", (*values.values(), auth_id)
        )

    def authorization(self, db: sqlite3.Connection, auth_id: str) -> Authorization | None:
        row = db.execute("SELECT * FROM authorizations WHERE id = ?", (auth_id,)).fetchone()
        return Authorization.from_row(row) if row else None

    def get(self, auth_id: str) -> Authorization | None:
        with self.read() as db:
            return self.authorization(db, auth_id)

    # -- wrong PINs

    def locked_until(self, credential_id: str) -> float:
        with self.read() as db:
            row = db.execute(
                "SELECT locked_until FROM pin_failures WHERE credential_id = ?", (credential_id,)
            ).fetchone()
        return float(row["locked_until"]) if row else 0.0

    def pin_failed(self, db: sqlite3.Connection, credential_id: str) -> int:
        """Count one more consecutive wrong PIN; returns the count."""
        db.execute(
            "INSERT INTO pin_failures (credential_id, failures) VALUES (?, 1) "
            "ON CONFLICT(credential_id) DO UPDATE SET failures = failures + 1",
            (credential_id,),
        )
        row = db.execute(
            "SELECT failures FROM pin_failures WHERE credential_id = ?", (credential_id,)
        ).fetchone()
        return int(row["failures"])

    def lock_pin(self, db: sqlite3.Connection, credential_id: str, until: float) -> None:
        db.execute(
            "UPDATE pin_failures SET failures = 0, locked_until = ? WHERE credential_id = ?",
            (until, credential_id),
        )

    def pin_succeeded(self, credential_id: str) -> None:
        with self.write() as db:
            db.execute("DELETE FROM pin_failures WHERE credential_id = ?", (credential_id,))

    # -- TOTP replay

    def totp_step_unused(self, db: sqlite3.Connection, username: str, step: int) -> bool:
        """Record ``step`` as used by ``username``; False when it (or a later one) was used."""
        row = db.execute(
            "SELECT last_step FROM totp_steps WHERE username = ?", (username,)
        ).fetchone()
        if row is not None and row["last_step"] >= step:
            return False
        db.execute(
            "INSERT INTO totp_steps VALUES (?, ?) "
            "ON CONFLICT(username) DO UPDATE SET last_step = excluded.last_step",
            (username, step),
        )
        return True

    # -- audit log

    def audit(
        self,
        db: sqlite3.Connection,
        event: str,
        *,
        client_id: str = "",
        credential_id: str = "",
        authorization_id: str = "",
        **detail: Any,
    ) -> None:
        """Append one record inside the caller's write transaction."""
        row = db.execute("SELECT hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        prev = row["hash"] if row else GENESIS
        at = datetime.now(UTC).isoformat(timespec="milliseconds")
        text = json.dumps(detail, ensure_ascii=False, sort_keys=True)
        fields = (client_id, credential_id, authorization_id)
        db.execute(
            "INSERT INTO audit (at, event, client_id, credential_id, authorization_id, detail, "
            "prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (at, event, *fields, text, prev, _audit_hash(prev, at, event, fields, text)),
        )

    def record(self, event: str, **kwargs: Any) -> None:
        """Append one record in a transaction of its own."""
        with self.write() as db:
            self.audit(db, event, **kwargs)

    def audit_log(self) -> list[dict[str, Any]]:
        with self.read() as db:
            rows = db.execute("SELECT * FROM audit ORDER BY seq").fetchall()
        return [dict(r, detail=json.loads(r["detail"])) for r in rows]

    def check_audit(self) -> list[str]:
        """Problems in the hash chain (empty when intact)."""
        problems = []
        prev = GENESIS
        with self.read() as db:
            rows = db.execute("SELECT * FROM audit ORDER BY seq").fetchall()
        for r in rows:
            fields = (r["client_id"], r["credential_id"], r["authorization_id"])
            expected = _audit_hash(prev, r["at"], r["event"], fields, r["detail"])
            if r["prev_hash"] != prev or r["hash"] != expected:
                problems.append(f"audit record {r['seq']} does not match the chain")
            prev = r["hash"]
        return problems
