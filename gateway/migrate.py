"""Schema migrations through Alembic, callable from the CLI, `make run` and tests."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import make_url

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the database to `revision` (the newest by default)."""
    command.upgrade(alembic_config(database_url), revision)


def missing_schema(database_url: str) -> str | None:
    """Why this URL holds no gateway database (no file, no tables), or None if it does.

    Checked before a command uses the database, so that it says where it looked instead of
    failing on "no such table" (and without creating an empty SQLite file on the way).
    """
    parsed = make_url(database_url)
    where = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        path = Path(str(parsed.database))
        if not path.is_file():
            return f"there is no database file at {path.resolve()}"
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return f"the database {where} has no gateway tables"
    except Exception as exc:  # unreachable server, refused login, ...
        return f"the database {where} is not reachable: {exc}"
    finally:
        engine.dispose()
    return None


def heads(database_url: str = "sqlite://") -> list[str]:
    return list(ScriptDirectory.from_config(alembic_config(database_url)).get_heads())
