"""The managed server's new database is made from the shipped schema: it must be what Prefect's migrations make."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from flows.cli._prefect_database import SCHEMA_FILE, _known_revision, create_from_schema, schema_revision

ROOT = Path(__file__).resolve().parents[2]


def _normalised(sql: str) -> str:
    """A CREATE TABLE with its column and constraint lines sorted: migrations that copy a table
    (SQLite's ALTER) list its constraints in an order that differs from one run to the next."""
    head, _, body = sql.partition("(\n")
    if not sql.startswith("CREATE TABLE") or not body:
        return sql
    return head + "\n".join(sorted(line.strip().rstrip(",").strip() for line in body.splitlines()))


def _signature(schema: str) -> dict[str, object]:
    """What a dump defines: every table, index, trigger and view, each table's columns in order, the revision."""
    connection = sqlite3.connect(":memory:")
    try:
        connection.executescript(schema)
        objects = sorted(
            (kind, name, table, _normalised(sql))
            for kind, name, table, sql in connection.execute("SELECT type, name, tbl_name, sql FROM sqlite_master")
            if sql is not None
        )
        columns = {
            table: connection.execute(f'PRAGMA table_xinfo("{table}")').fetchall()
            for kind, table, _, _ in objects
            if kind == "table"
        }
        revision = connection.execute("SELECT version_num FROM alembic_version").fetchall()
    finally:
        connection.close()
    return {"objects": objects, "columns": columns, "revision": revision}


def _schema(action: str, out: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_") or k == "PREFECT_LOGGING_LEVEL"}
    subprocess.run(
        [sys.executable, "-m", "flows.cli._prefect_database", action, str(out)],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=300,
    )
    return out.read_text(encoding="utf-8")


def test_the_shipped_schema_upgraded_by_prefect_is_what_its_migrations_make(tmp_path: Path) -> None:
    migrated = _schema("dump", tmp_path / "migrated.sql")
    from_schema = _schema("upgrade", tmp_path / "from_schema.sql")
    assert _signature(from_schema) == _signature(migrated)
    # and the shipped schema is the installed Prefect's (else regenerate it with "dump")
    assert _signature(SCHEMA_FILE.read_text(encoding="utf-8")) == _signature(migrated)


def test_a_new_database_is_made_at_the_schemas_revision(tmp_path: Path) -> None:
    schema = SCHEMA_FILE.read_text(encoding="utf-8")
    path = tmp_path / "home" / "prefect.db"
    assert create_from_schema(path, schema)
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT version_num FROM alembic_version").fetchall() == [(schema_revision(schema),)]
        assert connection.execute("SELECT count(*) FROM flow_run").fetchone() == (0,)
    assert os.listdir(path.parent) == ["prefect.db"]  # no temporary file left


def test_a_half_made_database_of_a_killed_server_is_cleared(tmp_path: Path) -> None:
    (tmp_path / ".prefect.db.4242.tmp").write_bytes(b"half a database")
    assert create_from_schema(tmp_path / "prefect.db", SCHEMA_FILE.read_text(encoding="utf-8"))
    assert os.listdir(tmp_path) == ["prefect.db"]


def test_an_existing_database_is_never_replaced(tmp_path: Path) -> None:
    path = tmp_path / "prefect.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE flow_run (id TEXT)")
        connection.execute("INSERT INTO flow_run VALUES ('a run of last night')")
    connection.close()
    before = path.read_bytes()
    assert not create_from_schema(path, SCHEMA_FILE.read_text(encoding="utf-8"))
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["prefect.db"]


def test_the_schema_is_used_only_with_a_prefect_that_knows_its_revision() -> None:
    from prefect.server.database import provide_database_interface

    versions = Path(provide_database_interface().orm.versions_dir)
    revision = schema_revision(SCHEMA_FILE.read_text(encoding="utf-8"))
    assert _known_revision(revision, versions)
    assert not _known_revision("0123456789ab", versions)
    with pytest.raises(ValueError, match="alembic_version"):
        schema_revision("CREATE TABLE flow_run (id TEXT);")
    assert re.fullmatch(r"[0-9a-f]{12}", revision)
