"""Apply ``migrations/*.sql`` in order, once each, under an advisory lock (safe from many Lambdas).

Who migrates (issue 17 §2, docs/database-roles.md): in AWS only the MigrateDatabase custom resource
(``functions/migrate_database``), as the master user; the adapters' on-connect migration
(``migrate_offline``) does nothing in a deployed function and serves the offline runtime and the tests.
Migrations after ``0009_roles`` run as ``ffe_migrate`` (``SET LOCAL ROLE``), the owner of every schema object,
so the default privileges of 0009 cover what they create.
"""

from __future__ import annotations

from importlib import resources

import psycopg

from ffe.stage_data import deployed

_LOCK_KEY = 0x0FFE_0001  # pg_advisory_xact_lock key shared by every migrator of this schema
ROLES_MIGRATION = "0009_roles"  # creates ffe_migrate; the later ones run as it
OWNER_ROLE = "ffe_migrate"


def migration_files() -> list[tuple[str, str]]:
    """(version, sql) of every bundled migration, sorted by file name."""
    folder = resources.files("ffe.store").joinpath("migrations")
    files = sorted((f.name, f) for f in folder.iterdir() if f.name.endswith(".sql"))
    return [(name.removesuffix(".sql"), f.read_text()) for name, f in files]


def applied_versions(conn: psycopg.Connection) -> set[str] | None:
    """The versions recorded in ``schema_migrations``; None when the table does not exist yet."""
    if conn.execute("SELECT to_regclass('schema_migrations')").fetchone() == (None,):
        return None
    return {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}


def migrate(conn: psycopg.Connection, up_to: str | None = None) -> list[str]:
    """Bring the schema up to date (or up to version ``up_to``); returns the versions applied now.

    An up-to-date schema is seen without the lock or any DDL (a role that may only read ``schema_migrations``,
    such as ``ffe_app`` offline, gets ``[]``); otherwise the pending migrations run in one transaction under the
    advisory lock, and need a user that may create the roles (0009) and act as ``ffe_migrate``.
    """
    wanted = [version for version, _ in migration_files() if up_to is None or version <= up_to]
    with conn.transaction():
        done = applied_versions(conn)
        if done is not None and done.issuperset(wanted):
            return []
    applied_now: list[str] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = applied_versions(conn) or set()
        as_owner = False
        for version, sql in migration_files():
            if up_to is not None and version > up_to:
                break
            if version in done:
                continue
            if version > ROLES_MIGRATION and not as_owner:
                conn.execute(f"SET LOCAL ROLE {OWNER_ROLE}")  # until this transaction ends
                as_owner = True
            conn.execute(sql)  # trusted, bundled DDL
            conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
            applied_now.append(version)
    return applied_now


def migrate_offline(conn: psycopg.Connection) -> list[str]:
    """The adapters' migration on a new connection: the offline runtime's and the tests' only.

    A deployed function (``ffe.stage_data.deployed``) never migrates: the schema is MigrateDatabase's, and the
    role a function connects as may not change it anyway (tests/integration/test_database_roles.py).
    """
    if deployed():
        return []
    return migrate(conn)
