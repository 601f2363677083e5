"""A new local Prefect database made from the schema its migrations make, instead of by them.

On a fresh ``PREFECT_HOME`` the Prefect server creates its SQLite database by running its
Alembic migrations one by one (about 120 of them, 10 s of CPU on a lab PC); that was most of
the first ``shotflow run``. The schema they end with is shipped here as SQL
(:data:`SCHEMA_FILE`, Python's ``sqlite3`` dump of a freshly migrated database: tables,
indexes and the Alembic revision). The managed server loads it into a database file that does
not exist yet (20 ms), and Prefect's start-up migration then finds the database at that
revision: it does nothing, or runs only the migrations of a newer Prefect, exactly as for a
database an older Prefect made. A Prefect that does not know the revision (older than the
schema) is left to migrate a new database itself. An existing database is never touched.

``python -m flows.cli._prefect_database dump OUT`` writes the schema of the installed Prefect
(migrated in a temporary ``PREFECT_HOME``); ``upgrade OUT`` writes the schema of a database
made from :data:`SCHEMA_FILE` and upgraded by Prefect. The tests check that both are equal.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sqlite3
import sys
import tempfile
from pathlib import Path

__all__ = ["SCHEMA_FILE", "create_from_schema", "main", "schema_revision"]

logger = logging.getLogger(__name__)

SCHEMA_FILE = Path(__file__).with_name("_prefect_sqlite_schema.sql")
"""Prefect's SQLite schema after its migrations (regenerate with ``dump``)."""

_REVISION = re.compile(r"""^INSERT INTO "alembic_version" VALUES\('([0-9a-f]+)'\);$""", re.MULTILINE)


def schema_revision(schema: str) -> str:
    """The Alembic revision a schema dump is at."""
    match = _REVISION.search(schema)
    if match is None:
        raise ValueError("the schema has no alembic_version row")
    return match.group(1)


def _known_revision(revision: str, versions_dir: Path) -> bool:
    """Whether the installed Prefect has a migration to ``revision`` (its files are named after it)."""
    try:
        return any(f"_{revision}_" in name for name in os.listdir(versions_dir))
    except OSError:
        return False


def _publish(temporary: Path, path: Path) -> bool:
    """Move ``temporary`` to ``path`` unless ``path`` exists (never replaces a database).

    ``temporary`` is removed if it was not moved; an OSError other than "exists" (a file
    system without hard links) is raised.
    """
    try:
        if sys.platform == "win32":
            os.rename(temporary, path)  # fails if path exists
        else:
            os.link(temporary, path)  # fails if path exists
            temporary.unlink()
        return True
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        if isinstance(exc, FileExistsError):
            return False
        raise


def create_from_schema(path: Path, schema: str) -> bool:
    """Create the SQLite database ``path`` from ``schema`` if no file is there; True if created."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a server killed while it made one
        stale.unlink(missing_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    connection = sqlite3.connect(temporary)
    try:
        connection.executescript(schema)
    finally:
        connection.close()
    return _publish(temporary, path)


def prepare_server_database() -> None:
    """Before the server starts: a database that does not exist yet is made from :data:`SCHEMA_FILE`.

    Only for Prefect's SQLite database in a file, and only if the installed Prefect knows the
    schema's revision; otherwise Prefect migrates as usual.
    """
    from prefect.server.database import provide_database_interface
    from sqlalchemy.engine import make_url

    database = provide_database_interface()
    url = make_url(database.database_config.connection_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return
    path = Path(url.database)
    if path.exists():
        return
    schema = SCHEMA_FILE.read_text(encoding="utf-8")
    revision = schema_revision(schema)
    if not _known_revision(revision, Path(database.orm.versions_dir)):
        logger.info("Prefect does not know the shipped schema's revision %s: it migrates a new database", revision)
        return
    try:
        created = create_from_schema(path, schema)
    except (OSError, sqlite3.Error) as exc:  # the server still starts: Prefect migrates a new database
        logger.warning("could not make the Prefect database %s from its schema (%s): Prefect migrates it", path, exc)
        return
    if created:
        logger.info("created the Prefect database %s from its schema at revision %s", path, revision)


def _dump(path: Path) -> str:
    connection = sqlite3.connect(path)
    try:
        return "\n".join(connection.iterdump()) + "\n"
    finally:
        connection.close()


def _migrated_schema(from_schema: bool) -> str:
    """The schema of a new database in a temporary ``PREFECT_HOME``, migrated by Prefect (from ours if asked)."""
    with tempfile.TemporaryDirectory() as home:
        os.environ["PREFECT_HOME"] = home
        os.environ.pop("PREFECT_API_DATABASE_CONNECTION_URL", None)
        os.environ.pop("PREFECT_SERVER_DATABASE_CONNECTION_URL", None)
        import anyio
        from prefect.server.database import provide_database_interface

        database = provide_database_interface()
        path = Path(home) / "prefect.db"
        if from_schema:
            create_from_schema(path, SCHEMA_FILE.read_text(encoding="utf-8"))
        anyio.run(database.create_db)
        return _dump(path)


def main(argv: list[str] | None = None) -> None:
    """``dump OUT``: the installed Prefect's schema; ``upgrade OUT``: the shipped schema upgraded by it."""
    parser = argparse.ArgumentParser(prog="python -m flows.cli._prefect_database")
    parser.add_argument("action", choices=["dump", "upgrade"])
    parser.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    args.out.write_text(_migrated_schema(from_schema=args.action == "upgrade"), encoding="utf-8")


if __name__ == "__main__":
    main()
