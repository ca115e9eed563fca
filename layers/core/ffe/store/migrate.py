"""Apply ``migrations/*.sql`` in order, once each, under an advisory lock (safe from many Lambdas)."""

from __future__ import annotations

from importlib import resources

import psycopg

_LOCK_KEY = 0x0FFE_0001  # pg_advisory_xact_lock key shared by every migrator of this schema


def migration_files() -> list[tuple[str, str]]:
    """(version, sql) of every bundled migration, sorted by file name."""
    folder = resources.files("ffe.store").joinpath("migrations")
    files = sorted((f.name, f) for f in folder.iterdir() if f.name.endswith(".sql"))
    return [(name.removesuffix(".sql"), f.read_text()) for name, f in files]


def migrate(conn: psycopg.Connection, up_to: str | None = None) -> list[str]:
    """Bring the schema up to date (or up to version ``up_to``); returns the versions applied now."""
    applied_now: list[str] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        for version, sql in migration_files():
            if up_to is not None and version > up_to:
                break
            if version in done:
                continue
            conn.execute(sql)  # trusted, bundled DDL
            conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
            applied_now.append(version)
    return applied_now
