"""Shared fixtures: a development PKI, settings in a temporary folder, contexts on
SQLite and on the PostgreSQL server at 127.0.0.1:5432, and the demo ward."""

from __future__ import annotations

import importlib.util
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from esign.config import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("ESIGN_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def _load_pki_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("make_dev_pki", ROOT / "keys" / "make_dev_pki.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


PKI_PORT = 9780


@pytest.fixture(scope="session")
def pki_services():  # type: ignore[no-untyped-def]
    """certomancer's OCSP, CRL and TSA on 127.0.0.1, in a thread, for the test PKI (``dev_pki``).

    The port is bound before the PKI is built, since the certificates carry it
    in their URLs: 9780 when free, otherwise any free port (a developer's
    ``make run`` holds 9780, and so does the first pytest-xdist worker).
    ``pki_services.stopped()`` makes them answer 503 for a while.
    """
    import logging

    from esign.signing.devservices import PkiServices

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    try:
        services = PkiServices(PKI_PORT)
    except OSError:
        services = PkiServices(0)
    yield services
    services.close()


@pytest.fixture(scope="session")
def dev_pki(tmp_path_factory: pytest.TempPathFactory, pki_services) -> Path:  # type: ignore[no-untyped-def]
    """A complete development PKI, generated once per test run, its services running."""
    out = tmp_path_factory.mktemp("pki")
    _load_pki_module().make_dev_pki(out, port=pki_services.port)
    pki_services.load(out / "certomancer.yml")
    return out


def make_settings(base: Path, pki: Path, database_url: str | None = None, **extra: dict[str, object]) -> Settings:
    overrides: dict[str, dict[str, object]] = {
        "app": {"environment": "test", "base_url": "http://127.0.0.1:5000"},
        "database": {"url": database_url or f"sqlite:///{base / 'esign.db'}"},
        "storage": {"blobs": str(base / "blobs"), "previews": str(base / "previews")},
        "workflows": {"definitions": str(ROOT / "workflows")},
        "pki": {"trust_roots": [str(pki / "root.cert.pem")], "dev_dir": str(pki)},
        "signing": {"backends": ["softkey", "agent"], "seal_backend": "softkey"},
    }
    for table, values in extra.items():
        overrides.setdefault(table, {}).update(values)
    return load_settings(ROOT / "config.toml", env={}, overrides=overrides)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run, dropped afterwards."""
    import psycopg

    name = f"esign_test_{uuid.uuid4().hex[:10]}"
    admin = PG_ADMIN_URL
    try:
        conn = psycopg.connect(admin, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as e:
        pytest.fail(f"PostgreSQL is not reachable at {admin}: {e}")
    with conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = admin.rsplit("/", 1)[0] + f"/{name}"
    yield url
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _truncate_postgres(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'")]
        if tables:
            conn.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each service test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'esign.db'}"
    url = request.getfixturevalue("postgres_url")
    _truncate_postgres(url)
    return url


@pytest.fixture
def settings(tmp_path: Path, dev_pki: Path, db_url: str) -> Settings:
    return make_settings(tmp_path, dev_pki, db_url)


@pytest.fixture
def sqlite_settings(tmp_path: Path, dev_pki: Path) -> Settings:
    return make_settings(tmp_path, dev_pki)


def _context(settings: Settings):  # type: ignore[no-untyped-def]
    from esign.services.context import Context
    from esign.services.migrate import upgrade

    upgrade(settings)
    return Context.create(settings)


@pytest.fixture
def ctx(settings: Settings):  # type: ignore[no-untyped-def]
    """A migrated context on SQLite, then on PostgreSQL."""
    context = _context(settings)
    yield context
    context.close()


@pytest.fixture
def sqlite_ctx(sqlite_settings: Settings):  # type: ignore[no-untyped-def]
    context = _context(sqlite_settings)
    yield context
    context.close()


DEMO_PEOPLE = ROOT / "keys" / "people.toml"


@pytest.fixture
def demo(ctx):  # type: ignore[no-untyped-def]
    """The demo ward with its people and certificates, without the example memo."""
    from esign.services.demo import seed_people

    seed_people(ctx, DEMO_PEOPLE)
    return ctx


@pytest.fixture
def sqlite_demo(sqlite_ctx):  # type: ignore[no-untyped-def]
    from esign.services.demo import seed_people

    seed_people(sqlite_ctx, DEMO_PEOPLE)
    return sqlite_ctx


# --- independent checks of signed PDFs ----------------------------------------------------------


class PdfChecks:
    """Validate a PDF with pyHanko against the development root, and with poppler's pdfsig."""

    def __init__(self, root_pem: Path, workdir: Path) -> None:
        self.root_pem = root_pem
        self.workdir = workdir
        self._nssdir: Path | None = None

    def pyhanko(self, data: bytes) -> list[object]:
        """pyHanko's status for every embedded signature, in file order."""
        from io import BytesIO

        from pyhanko.pdf_utils.reader import PdfFileReader
        from pyhanko.sign.validation import validate_pdf_signature
        from pyhanko_certvalidator import ValidationContext
        from pyhanko_certvalidator.registry import SimpleTrustManager

        from esign.services.users import parse_certificates

        roots = parse_certificates(self.root_pem.read_bytes())
        reader = PdfFileReader(BytesIO(data))
        statuses = []
        for embedded in reader.embedded_regular_signatures:
            vc = ValidationContext(trust_manager=SimpleTrustManager.build(trust_roots=roots),
                                   allow_fetching=False, revocation_mode="soft-fail")
            statuses.append(validate_pdf_signature(embedded, vc))
        return statuses

    def _nss(self) -> Path:
        import subprocess

        if self._nssdir is None:
            nss = self.workdir / "nssdb"
            nss.mkdir(exist_ok=True)
            subprocess.run(["certutil", "-N", "-d", f"sql:{nss}", "--empty-password"], check=True,
                           capture_output=True)
            subprocess.run(["certutil", "-A", "-d", f"sql:{nss}", "-n", "esign-dev-root", "-t", "CT,C,C",
                            "-i", str(self.root_pem)], check=True, capture_output=True)
            self._nssdir = nss
        return self._nssdir

    def pdfsig(self, data: bytes) -> str:
        """pdfsig's report, with the development root trusted and no network."""
        import subprocess

        path = self.workdir / f"check-{uuid.uuid4().hex[:8]}.pdf"
        path.write_bytes(data)
        result = subprocess.run(["pdfsig", "-nssdir", f"sql:{self._nss()}", "-no-ocsp", str(path)],
                                capture_output=True, text=True, timeout=60, check=False)  # its verdict is the output
        return result.stdout + result.stderr


@pytest.fixture(scope="session")
def pdf_checks(dev_pki: Path, tmp_path_factory: pytest.TempPathFactory) -> PdfChecks:
    return PdfChecks(dev_pki / "root.cert.pem", tmp_path_factory.mktemp("pdfchecks"))
