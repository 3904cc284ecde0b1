"""``python -m policy_store.migrate [revision]``: upgrade DATABASE_URL to ``head`` (or to ``revision``)."""

from __future__ import annotations

import sys
from pathlib import Path

from alembic import command
from alembic.config import Config

ALEMBIC_INI = Path(__file__).resolve().parents[2] / "alembic.ini"


def alembic_config(database_url: str | None = None) -> Config:
    """Alembic's configuration for this service, optionally bound to ``database_url``."""
    config = Config(str(ALEMBIC_INI))
    if database_url:
        config.set_main_option("sqlalchemy.url", database_url)
    return config


def upgrade(database_url: str | None = None, revision: str = "head") -> None:
    """Apply the migrations up to ``revision``."""
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str | None = None, revision: str = "base") -> None:
    """Revert the migrations down to ``revision``."""
    command.downgrade(alembic_config(database_url), revision)


if __name__ == "__main__":
    upgrade(revision=sys.argv[1] if len(sys.argv) > 1 else "head")
