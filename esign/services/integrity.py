"""fsck, backup and restore.

``check_store`` re-reads everything esign promises about its data: every blob
matches its hash, every stored revision extends the one before it, every
document verifies (signatures, coverage, the workflow check), and the audit
chain is unbroken. ``backup`` writes the database rows (portable JSON lines,
so a SQLite backup restores into PostgreSQL and back) and the blobs into one
tar file; ``restore`` loads it into an empty, migrated database.
"""

from __future__ import annotations

import base64
import io
import json
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from sqlalchemy import Integer, Table, func, insert, select, text

from esign.errors import ConfigError, IntegrityError
from esign.models import AuditEvent, Base, Blob, Document, DocumentVersion, Revision
from esign.services import audit
from esign.services.blobs import sha256_hex
from esign.services.context import Context

FORMAT = "esign-backup-1"


@dataclass
class FsckReport:
    blobs: int = 0
    revisions: int = 0
    documents: int = 0
    audit_events: int = 0
    unreferenced_blobs: int = 0
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems


def check_store(ctx: Context, *, verify_signatures: bool = True,
                progress: Callable[[str], None] | None = None) -> FsckReport:
    """Check hashes, the prefix invariant, signatures and the audit chain."""
    from esign.services.verification import verify_document
    from esign.verify import Verdict

    started = time.perf_counter()
    report = FsckReport()
    say = progress or (lambda _message: None)
    with ctx.db.session() as session:
        say("blobs")
        known = set()
        for blob in session.scalars(select(Blob).order_by(Blob.sha256)):
            report.blobs += 1
            known.add(blob.sha256)
            try:
                data = ctx.blobs.read(blob.sha256, check=False)
            except IntegrityError as e:
                report.problems.append(str(e))
                continue
            if sha256_hex(data) != blob.sha256 or len(data) != blob.size:
                report.problems.append(f"blob {blob.sha256[:12]}…: content does not match its hash or size")
        # a crash between writing a file and committing its row leaves these; harmless
        report.unreferenced_blobs = len(ctx.blobs.names() - known)
        say("revisions")
        for version in session.scalars(select(DocumentVersion).order_by(DocumentVersion.id)):
            previous: bytes | None = None
            for revision in session.scalars(select(Revision).where(Revision.version_id == version.id)
                                            .order_by(Revision.index)):
                report.revisions += 1
                where = f"document {version.document_id} v{version.number} r{revision.index}"
                try:
                    data = ctx.blobs.read(revision.sha256)
                except IntegrityError as e:
                    report.problems.append(f"{where}: {e}")
                    previous = None
                    continue
                if previous is not None and not (len(data) > len(previous) and data.startswith(previous)):
                    report.problems.append(f"{where} does not extend the revision before it")
                previous = data
        document_ids = list(session.scalars(select(Document.id).order_by(Document.id)))
        say("audit chain")
        report.audit_events = session.scalar(select(func.count()).select_from(AuditEvent)) or 0
        report.problems.extend(f"audit event {p.seq}: {p.message}" for p in audit.check_chain(session))
    if verify_signatures:
        say("signatures")
        for document_id in document_ids:
            report.documents += 1
            result = verify_document(ctx, document_id)
            if result.verdict not in (Verdict.VALID, Verdict.UNSIGNED):
                reasons = ", ".join(f.code for f in result.reasons) or result.verdict.name
                report.problems.append(f"document {document_id}: {result.verdict.name} ({reasons})")
    report.seconds = time.perf_counter() - started
    return report


# --- backup and restore ------------------------------------------------------------------------


def _encode(value: object) -> object:
    if isinstance(value, bytes):
        return {"$b64": base64.b64encode(value).decode()}
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, date):
        return {"$d": value.isoformat()}
    return value


def _decode(value: object) -> object:
    if isinstance(value, dict):
        if "$b64" in value:
            return base64.b64decode(value["$b64"])
        if "$dt" in value:
            return datetime.fromisoformat(value["$dt"])
        if "$d" in value:
            return date.fromisoformat(value["$d"])
    return value


def _tables() -> list[Table]:
    return list(Base.metadata.sorted_tables)


def _rows(ctx: Context, table: Table) -> Iterator[str]:
    with ctx.db.engine.connect() as connection:
        for row in connection.execute(select(table).order_by(*table.primary_key.columns)).mappings():
            yield json.dumps({k: _encode(v) for k, v in row.items()}, ensure_ascii=False)


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(time.time())
    tar.addfile(info, io.BytesIO(data))


def _schema(ctx: Context) -> str:
    with ctx.db.engine.connect() as connection:
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one()


def backup(ctx: Context, target: Path) -> dict[str, int]:
    """Write every table and every referenced blob into a gzip'd tar; returns the counts."""
    counts: dict[str, int] = {}
    with tarfile.open(target, "w:gz") as tar:
        for table in _tables():
            lines = list(_rows(ctx, table))
            counts[table.name] = len(lines)
            _add(tar, f"tables/{table.name}.jsonl", "".join(line + "\n" for line in lines).encode())
        with ctx.db.session() as session:
            digests = list(session.scalars(select(Blob.sha256).order_by(Blob.sha256)))
        for digest in digests:
            tar.add(ctx.blobs.path(digest), arcname=f"blobs/{digest}")
        counts["blob files"] = len(digests)
        manifest = {"format": FORMAT, "schema": _schema(ctx), "counts": counts,
                    "created": datetime.now().astimezone().isoformat()}
        _add(tar, "manifest.json", json.dumps(manifest, indent=2).encode())
    return counts


def restore(ctx: Context, source: Path) -> dict[str, int]:
    """Load a backup into this context's database (migrated and empty) and blob store."""
    counts: dict[str, int] = {}
    with tarfile.open(source, "r:gz") as tar:
        manifest = json.loads(_member(tar, "manifest.json"))
        if manifest.get("format") != FORMAT:
            raise ConfigError("%(file)s is not an esign backup", file=str(source))
        if _schema(ctx) != manifest["schema"]:
            raise ConfigError("The backup has schema %(backup)s but the database has %(db)s; migrate first",
                              backup=manifest["schema"], db=_schema(ctx))
        with ctx.db.session() as session:
            if session.scalar(select(func.count()).select_from(Document)) or session.scalar(
                    select(func.count()).select_from(AuditEvent)):
                raise ConfigError("Restore needs an empty database")
        for member in tar.getmembers():
            if member.name.startswith("blobs/"):
                data = _member(tar, member.name)
                digest = member.name.split("/", 1)[1]
                if sha256_hex(data) != digest:
                    raise IntegrityError("The backup's file %(name)s does not match its hash", name=digest[:12])
                ctx.blobs.write(data)
        with ctx.db.engine.begin() as connection:
            for table in _tables():
                raw = _member(tar, f"tables/{table.name}.jsonl").decode()
                rows = [{k: _decode(v) for k, v in json.loads(line).items()} for line in raw.splitlines() if line]
                counts[table.name] = len(rows)
                for start in range(0, len(rows), 500):
                    connection.execute(insert(table), rows[start:start + 500])
            if connection.dialect.name == "postgresql":
                # rows came with their ids: move every serial sequence past them
                for table in _tables():
                    columns = list(table.primary_key.columns)
                    if len(columns) != 1 or not isinstance(columns[0].type, Integer):
                        continue
                    name, column = table.name, columns[0].name
                    connection.execute(text(
                        f"SELECT setval(pg_get_serial_sequence('{name}', '{column}'), "
                        f"COALESCE((SELECT MAX({column}) FROM {name}), 0) + 1, false) "
                        f"WHERE pg_get_serial_sequence('{name}', '{column}') IS NOT NULL"))
    return counts


def _member(tar: tarfile.TarFile, name: str) -> bytes:
    handle = tar.extractfile(name)
    if handle is None:
        raise ConfigError("The backup lacks %(name)s", name=name)
    return handle.read()
