"""The login roles of migration 0009 (docs/database-roles.md): each gets LOGIN and its secret's password here.

MigrateDatabase calls ``ensure_login`` for every role secret after migrating, as the master user. The password
reaches the server only as a SCRAM-SHA-256 verifier computed by libpq here (``PQencryptPasswordConn``), so no
statement log ever holds it. A role whose secret already logs in is left alone: once set, the password is the
secret's rotation's to change (hosted rotation, PostgreSQL single user), and a deploy never undoes a rotation.
"""

from __future__ import annotations

from collections.abc import Callable

import psycopg
from psycopg import sql

from ffe.domain.errors import PermanentError

# The roles a secret may name: never the master user, never ffe_migrate (NOLOGIN owner of the schema).
LOGIN_ROLES = ("ffe_app", "ffe_api", "ffe_experiments", "ffe_retention")


def ensure_login(conn: psycopg.Connection, username: str, password: str, logs_in: Callable[[str, str], bool]) -> bool:
    """Give ``username`` LOGIN with ``password`` unless ``logs_in(username, password)`` already; True if set."""
    if username not in LOGIN_ROLES:
        raise PermanentError(f"a database role secret names {username!r}; it may name only {', '.join(LOGIN_ROLES)}")
    if not password:
        raise PermanentError(f"the secret of database role {username} has no password")
    if logs_in(username, password):
        return False
    verifier = conn.pgconn.encrypt_password(password.encode(), username.encode(), b"scram-sha-256").decode()
    conn.execute(
        sql.SQL("ALTER ROLE {} WITH LOGIN PASSWORD {}").format(sql.Identifier(username), sql.Literal(verifier))
    )
    return True
