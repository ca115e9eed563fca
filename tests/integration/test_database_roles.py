"""The database roles of migration 0009 on a real PostgreSQL with password authentication (issue 17 §2).

A cluster of its own (the session's trusts every login): ``local all all scram-sha-256``, the superuser trusted
for the setup. The schema is migrated by ``ffe_admin``, a non-superuser with CREATEROLE that owns the database,
as Aurora's master user is; the login roles get their passwords the way MigrateDatabase gives them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
from moto import mock_aws
from psycopg import errors

from ffe import containers
from ffe.adapters.database import Database, configured
from ffe.adapters.equity_marks import PostgresEquityMarks
from ffe.adapters.experiments import PostgresExperiments
from ffe.adapters.paper_broker import PaperBroker
from ffe.adapters.queries import DecisionFilters, DecisionQueries
from ffe.adapters.reservations import PostgresReservations
from ffe.adapters.store import PostgresDecisionStore
from ffe.contracts import CycleHeader, FailureRecord
from ffe.domain.experiments import Experiment, Mode, Trigger
from ffe.domain.experiments import ExperimentStatus as S
from ffe.domain.models import Action
from ffe.domain.portfolio import OrderRequest, OrderSide
from ffe.domain.risk import RiskLimits
from ffe.local.postgres import EmbeddedPostgres
from ffe.settings import DatabaseSettings
from ffe.steps.gate import gate_risk
from ffe.steps.retain import retain_decisions
from ffe.store import migrate as migrate_module
from ffe.store.migrate import migrate, migrate_offline, migration_files
from ffe.store.roles import LOGIN_ROLES, ensure_login
from functions.migrate_database import handler as migrate_database
from tests import gate_inputs
from tests.database import own_database
from tests.gate_inputs import replay_bars

AS_OF = datetime(2019, 6, 15, 12, 1, tzinfo=UTC)
PASSWORDS = {role: f"{role}-secret-1" for role in LOGIN_ROLES}
ADMIN = ("ffe_admin", "admin-secret")
IN_LAMBDA = "AWS_Lambda_python3.12"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The superuser's URL of a cluster that asks every other role for its password, with database ``ffe_roles``
    owned by ``ffe_admin`` and migrated by it."""
    if "DATABASE_URL" in __import__("os").environ:
        pytest.skip("needs a cluster of its own (password authentication): unset DATABASE_URL")
    server = EmbeddedPostgres(tmp_path_factory.mktemp("roles") / "data").start()
    try:
        with psycopg.connect(server.url, autocommit=True) as conn:
            hba = Path(conn.execute("SHOW hba_file").fetchone()[0])  # type: ignore[index]
            hba.write_text("local all postgres trust\nlocal all all scram-sha-256\n")
            conn.execute("SELECT pg_reload_conf()")
            conn.execute(f"CREATE ROLE {ADMIN[0]} LOGIN CREATEROLE PASSWORD '{ADMIN[1]}'")
            conn.execute(f"CREATE DATABASE ffe_roles OWNER {ADMIN[0]}")
        url = psycopg.conninfo.make_conninfo(server.url, dbname="ffe_roles")
        with psycopg.connect(as_role(url, *ADMIN), autocommit=True) as conn:
            assert migrate(conn) == [version for version, _ in migration_files()]
            for role, password in PASSWORDS.items():
                assert ensure_login(conn, role, password, lambda user, pw: False)
        yield url
    finally:
        server.stop()


def as_role(url: str, role: str, password: str | None = None) -> str:
    return psycopg.conninfo.make_conninfo(url, user=role, password=password or PASSWORDS[role])


def tables(cluster: str) -> list[str]:
    with psycopg.connect(cluster) as conn:
        rows = conn.execute(
            "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p')"
            " AND NOT relispartition ORDER BY 1"
        ).fetchall()
    return [name for (name,) in rows]


def refused(url: str, statement: str, params: tuple[Any, ...] = ()) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        try:
            conn.execute(statement, params)
        except errors.InsufficientPrivilege:
            return True
    return False


# --- the owner and the migrating user ------------------------------------------------------------------------


def test_the_master_user_migrates_and_ffe_migrate_owns_every_object(cluster: str) -> None:
    with psycopg.connect(cluster) as conn:
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (ADMIN[0],)).fetchone() == (False,)
        owners = conn.execute(
            "SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class WHERE relnamespace = 'public'::regnamespace"
            " UNION SELECT DISTINCT pg_get_userbyid(proowner) FROM pg_proc WHERE pronamespace = 'public'::regnamespace"
        ).fetchall()
        logins = conn.execute("SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname LIKE 'ffe\\_%' ORDER BY 1")
        assert dict(logins.fetchall()) == {ADMIN[0]: True, "ffe_migrate": False} | dict.fromkeys(LOGIN_ROLES, True)
    assert owners == [("ffe_migrate",)]


def test_0009_applies_again_without_harm(cluster: str) -> None:
    (sql,) = [sql for version, sql in migration_files() if version == "0009_roles"]
    with psycopg.connect(as_role(cluster, *ADMIN), autocommit=True) as conn:
        conn.execute(sql)  # every statement idempotent
        assert migrate(conn) == []


def test_a_later_migration_runs_as_ffe_migrate_and_the_default_privileges_cover_it(
    cluster: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    later = ("9999_later", "CREATE TABLE later_table (id int PRIMARY KEY, note text)")
    monkeypatch.setattr(migrate_module, "migration_files", lambda: [*migration_files(), later])
    with psycopg.connect(as_role(cluster, *ADMIN), autocommit=True) as conn:
        assert migrate(conn) == ["9999_later"]
        owner = conn.execute("SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'later_table'")
        assert owner.fetchone() == ("ffe_migrate",)
    with psycopg.connect(as_role(cluster, "ffe_app"), autocommit=True) as conn:
        conn.execute("INSERT INTO later_table VALUES (1, 'a')")
        conn.execute("UPDATE later_table SET note = 'b'")
    assert refused(as_role(cluster, "ffe_app"), "DELETE FROM later_table")
    assert refused(as_role(cluster, "ffe_api"), "INSERT INTO later_table VALUES (2, 'c')")
    with psycopg.connect(as_role(cluster, "ffe_api")) as conn:
        assert conn.execute("SELECT note FROM later_table").fetchall() == [("b",)]
    with psycopg.connect(as_role(cluster, *ADMIN), autocommit=True) as conn:  # leave the schema as it was
        conn.execute("SET ROLE ffe_migrate")
        conn.execute("DROP TABLE later_table")
        conn.execute("DELETE FROM schema_migrations WHERE version = '9999_later'")


# --- ffe_app: the cycle --------------------------------------------------------------------------------------


def test_the_app_role_does_what_a_cycle_does(cluster: str, cycle_id: str) -> None:
    app = as_role(cluster, "ffe_app")
    store = PostgresDecisionStore(app, stage="dev")
    reservations = PostgresReservations(app, ttl_seconds=1200)
    broker = PaperBroker(app, f"paper-{cycle_id}", clock=lambda: AS_OF, starting_cash=Decimal("100000"))
    experiments = PostgresExperiments(app)
    marks = PostgresEquityMarks(app)
    try:
        # Open the cycle, gate and record a decision (a new month partition), place and settle its order
        assert store.open_cycle(CycleHeader(cycle_id=cycle_id, assets=["BTCUSD"], timeframe="1h"), "arn:x").created
        bars = replay_bars("BTCUSD", AS_OF)
        inp = gate_inputs.gate_input(cycle_id, bars, AS_OF, confidence=1.0)
        record = gate_risk(inp, broker, RiskLimits(), lambda asset, broken: None, reservations)
        assert record.action is Action.BUY and record.size
        stored = store.record_decision(record)
        assert stored.created and not store.record_decision(record).created
        order = OrderRequest(f"{cycle_id}-o", "BTCUSD", OrderSide.BUY, Decimal("0.01"))
        assert broker.place_order(order).client_order_id == order.client_order_id
        broker.settle("BTCUSD", bars)
        assert marks.marks(f"paper-{cycle_id}", date(2019, 6, 15), Decimal("100000"))[1] == Decimal("100000")
        assert store.record_failure(FailureRecord(cycle_id=cycle_id, asset="ETHUSD", error="X"), "boom").created
        # "Close the cycle" reviews experiments and may change the champion
        experiments.create(Experiment(f"e-{cycle_id}", "v1", "v2", Mode.SHADOW, AS_OF, frozenset({"ETHUSD"})))
        experiments.transition(f"e-{cycle_id}", S.RUNNING, "record-decision", Trigger.MANUAL)
        experiments.set_champion("v2", "record-decision", "test")
        assert experiments.cycle_models().champion == "v2"
        assert store.close_cycle(cycle_id, "SUCCEEDED")
    finally:
        for adapter in (store, reservations, broker, experiments, marks):
            adapter.close()


@pytest.mark.parametrize(
    "statement",
    [
        "DROP TABLE decisions",
        "DROP TABLE cycles",
        "TRUNCATE cycles",
        "TRUNCATE decisions",
        "DELETE FROM cycles",
        "DELETE FROM order_reservations",
        "CREATE TABLE mine (id int)",
        "CREATE VIEW mine AS SELECT 1",
        "ALTER TABLE cycles ADD COLUMN x int",
        "CREATE INDEX ON cycles (stage)",
        "SELECT * FROM ffe_drop_decision_partitions(1, now() + interval '100 years')",
        "UPDATE decisions SET reason = 'rewritten'",
        "INSERT INTO schema_migrations (version) VALUES ('x')",
    ],
)
def test_the_app_role_may_not(cluster: str, statement: str) -> None:
    assert refused(as_role(cluster, "ffe_app"), statement)


def test_the_app_role_reaches_partitions_only_through_decisions(cluster: str, cycle_id: str) -> None:
    with psycopg.connect(as_role(cluster, "ffe_app"), autocommit=True) as conn:
        (partition,) = conn.execute("SELECT ffe_ensure_decision_partition(%s)", (AS_OF,)).fetchone()  # type: ignore[misc]
    assert refused(as_role(cluster, "ffe_app"), f"UPDATE {partition} SET reason = 'x'")
    assert refused(as_role(cluster, "ffe_app"), f"DROP TABLE {partition}")


# --- ffe_api, ffe_experiments ------------------------------------------------------------------------------


def test_the_api_role_reads_everything_and_writes_nothing(cluster: str) -> None:
    api = as_role(cluster, "ffe_api")
    queries = DecisionQueries(api)
    try:
        assert queries.decisions(DecisionFilters(), None, 5) is not None and queries.ping() >= 0
    finally:
        queries.close()
    names = tables(cluster)
    assert {"decisions", "cycles", "experiments", "paper_orders"} <= set(names)
    for table in names:
        assert not refused(api, f"SELECT * FROM {table} LIMIT 1"), table
        for statement in (
            f"INSERT INTO {table} DEFAULT VALUES",
            f"UPDATE {table} SET {plain_column(cluster, table)} = NULL",
            f"DELETE FROM {table}",
            f"TRUNCATE {table}",
            f"DROP TABLE {table}",
        ):
            assert refused(api, statement), statement
    assert refused(api, "SELECT ffe_ensure_decision_partition(now())")


def plain_column(cluster: str, table: str) -> str:
    """A column an UPDATE may set (not an identity column, which refuses before the privilege check)."""
    with psycopg.connect(cluster) as conn:
        row = conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped"
            " AND attidentity = '' ORDER BY attnum LIMIT 1",
            (table,),
        ).fetchone()
    assert row is not None
    return str(row[0])


def test_the_experiments_role_writes_only_the_experiment_tables(cluster: str, cycle_id: str) -> None:
    url = as_role(cluster, "ffe_experiments")
    experiments = PostgresExperiments(url)
    try:
        experiments.create(Experiment(f"x-{cycle_id}", "v1", "v3", Mode.SPLIT, AS_OF, frozenset({"EURUSD"})))
        experiments.transition(f"x-{cycle_id}", S.RUNNING, "alice", Trigger.MANUAL)
        experiments.transition(f"x-{cycle_id}", S.STOPPED, "alice", Trigger.MANUAL)
        assert experiments.set_champion("v3", "alice").version == "v3"
    finally:
        experiments.close()
    for statement in ("DELETE FROM experiments", "INSERT INTO cycles (id, stage, status) VALUES ('c', 's', 'RUNNING')"):
        assert refused(url, statement)
    assert refused(url, "SELECT * FROM decisions LIMIT 1")


# --- ffe_retention ----------------------------------------------------------------------------------------------


def test_retention_exports_and_drops_as_its_own_role_only(cluster: str) -> None:
    with psycopg.connect(as_role(cluster, "ffe_app"), autocommit=True) as conn:
        (old,) = conn.execute("SELECT ffe_ensure_decision_partition('2001-01-15')").fetchone()  # type: ignore[misc]
    database = Database(as_role(cluster, "ffe_retention"), name="decision store")
    exported: dict[str, bytes] = {}

    def export(partition: str, chunks: Iterator[bytes]) -> str:
        exported[partition] = b"".join(chunks)
        return f"s3://bucket/{partition}.csv.gz"

    try:
        result = retain_decisions(database, retention_days=365, now=datetime(2010, 1, 1, tzinfo=UTC), export=export)
    finally:
        database.close()
    assert old in result.dropped and exported[old].startswith(b"id,")
    retention = as_role(cluster, "ffe_retention")
    for statement in ("INSERT INTO cycles (id, stage, status) VALUES ('c', 's', 'RUNNING')", "DELETE FROM decisions"):
        assert refused(retention, statement)
    assert refused(retention, "DROP TABLE cycles")


# --- containers never migrate in AWS ------------------------------------------------------------------------


def test_a_deployed_function_never_migrates_offline_it_does(postgres: str, monkeypatch: pytest.MonkeyPatch) -> None:
    url = own_database(postgres, "ffe_never_migrates")
    monkeypatch.setenv("AWS_EXECUTION_ENV", IN_LAMBDA)
    store = PostgresDecisionStore(url)
    try:
        with pytest.raises(errors.UndefinedTable):
            store.open_cycle(CycleHeader(cycle_id="c1", assets=["BTCUSD"], timeframe="1h"), "arn:x")
    finally:
        store.close()
    with psycopg.connect(url, autocommit=True) as conn:
        assert migrate_offline(conn) == []
        assert conn.execute("SELECT to_regclass('schema_migrations')").fetchone() == (None,)
        monkeypatch.delenv("AWS_EXECUTION_ENV")
        assert migrate_offline(conn) == [version for version, _ in migration_files()]


# --- MigrateDatabase: the roles' passwords from their secrets --------------------------------------------------


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    with mock_aws():
        yield boto3.client("secretsmanager", region_name="us-east-1")


def rds_secret(url: str, user: str, password: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(url)
    return json.dumps(
        {
            "engine": "postgres",
            "host": info["host"],
            "port": int(str(info.get("port") or 5432)),
            "username": user,
            "password": password,
            "dbname": info["dbname"],
            "sslmode": "disable",
        }
    )


def test_migrate_database_gives_each_role_its_secret_s_password_once(
    cluster: str, secrets: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    master = secrets.create_secret(Name="master", SecretString=rds_secret(cluster, *ADMIN))["ARN"]
    api = secrets.create_secret(Name="api", SecretString=rds_secret(cluster, "ffe_api", "api-rotated-2"))["ARN"]
    monkeypatch.setenv("DB_SECRET_ARN", master)
    monkeypatch.setenv("DB_ROLE_SECRET_ARNS", f" {api} ,")
    assert migrate_database.apply_migrations() == []
    with psycopg.connect(as_role(cluster, "ffe_api", "api-rotated-2")) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("ffe_api",)
    with psycopg.connect(as_role(cluster, *ADMIN), autocommit=True) as conn:  # a later deploy finds it logs in
        assert not ensure_login(conn, "ffe_api", "api-rotated-2", lambda user, pw: True)
        ensure_login(conn, "ffe_api", PASSWORDS["ffe_api"], lambda user, pw: False)  # back as the module had it
    bad = secrets.create_secret(Name="bad", SecretString=rds_secret(cluster, ADMIN[0], "x"))["ARN"]
    monkeypatch.setenv("DB_ROLE_SECRET_ARNS", bad)
    containers.reset()  # a new container: the settings read again
    with pytest.raises(Exception, match="may name only"):
        migrate_database.apply_migrations()


# --- rotation: the password is read at connect time, again after a refused login ---------------------------------


def test_a_rotated_password_is_picked_up_on_reconnect(
    cluster: str, secrets: Any, monkeypatch: pytest.MonkeyPatch, cycle_id: str
) -> None:
    arn = secrets.create_secret(Name="app", SecretString=rds_secret(cluster, "ffe_app", PASSWORDS["ffe_app"]))["ARN"]
    monkeypatch.setenv("DB_SECRET_ARN", arn)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    settings = DatabaseSettings.model_validate({"db_secret_arn": arn})
    store = PostgresDecisionStore(configured(settings), stage="dev")
    bars = replay_bars("BTCUSD", AS_OF)

    def decide(n: int) -> bool:
        inp = gate_inputs.gate_input(f"{cycle_id}-{n}", bars, AS_OF + timedelta(hours=n), action=Action.HOLD)
        return store.record_decision(inp.decision).created

    try:
        assert decide(1)
        # The secret rotates (hosted rotation: the role's password, then the secret), and the proxy drops the session
        rotate(cluster, secrets, arn, "ffe_app-secret-2")
        with psycopg.connect(cluster, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'ffe_app'")
        assert decide(2)  # the replaced connection logs in with the new password
        # A new Database in a warm container: its first connect reads Powertools' cached (old) secret, is refused,
        # reads the secret again and logs in
        rotate(cluster, secrets, arn, "ffe_app-secret-3")
        store.close()
        store = PostgresDecisionStore(configured(settings), stage="dev")
        assert decide(3)
    finally:
        store.close()
        rotate(cluster, secrets, arn, PASSWORDS["ffe_app"])


def rotate(cluster: str, secrets: Any, arn: str, password: str) -> None:
    with psycopg.connect(as_role(cluster, *ADMIN), autocommit=True) as conn:
        ensure_login(conn, "ffe_app", password, lambda user, pw: False)
    secrets.put_secret_value(SecretId=arn, SecretString=rds_secret(cluster, "ffe_app", password))
