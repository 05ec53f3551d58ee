"""Schema migrations with Alembic, driven from esign's settings."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from esign.config import Settings

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(settings: Settings, revision: str = "head") -> None:
    """Bring the database to ``revision`` (idempotent)."""
    from esign.services.db import make_engine

    engine = make_engine(settings.database.url)
    config = alembic_config(settings.database.url)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    engine.dispose()
