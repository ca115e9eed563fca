"""MLflow tracking and model registry for the training pipeline, on a PostgreSQL backend store.

Where MLflow points (``tracking_uri``)
    1. ``MLFLOW_TRACKING_URI`` when it is set. In AWS that is one of:

       * the Aurora PostgreSQL cluster (through RDS Proxy), its own ``mlflow`` database:
         ``postgresql+psycopg://<user>:<password>@<proxy-endpoint>:5432/mlflow?sslmode=require``
         (SQLAlchemy URL; psycopg 3 is the driver, there is no psycopg2 in the images);
       * a SageMaker managed MLflow tracking server, named by its ARN:
         ``arn:aws:sagemaker:<region>:<account>:mlflow-tracking-server/<name>``. That needs the
         ``sagemaker-mlflow`` plugin in the training image; the server owns the schema, the registry and
         the artifact store, so ``ensure_tracking_schema`` does nothing for it.
    2. Otherwise a database (default ``mlflow``) in the local embedded cluster (``.ffe/pgdata`` for the CLI,
       the session cluster in tests). It is created when missing; the libpq URL of the cluster, unix-socket
       ``host=`` query parameter included, becomes a ``postgresql+psycopg://`` SQLAlchemy URL.

Where artifacts go (``artifact_root``)
    ``MLFLOW_ARTIFACT_ROOT`` when set: in AWS ``s3://ffe-<stage>-models/mlflow`` (the stage's model
    bucket). Otherwise a local directory, ``.ffe/mlartifacts`` unless told. A new experiment's artifact
    location is ``<root>/<experiment name>``; MLflow never changes an existing experiment's location. With a
    tracking *server* (ARN, http) and no ``MLFLOW_ARTIFACT_ROOT`` the server chooses.

Schema
    MLflow's SQL store creates its tables and runs its alembic migrations from the constructor when the
    database looks empty, then inserts the default experiment. Twenty trainers starting at once on a fresh
    database race on both (duplicate tables, duplicate experiment 0, a half-migrated schema).
    ``ensure_tracking_schema`` does that first construction under a PostgreSQL advisory lock, so one
    starter migrates and the others wait and then find the schema at head. ``Tracker`` calls it.

Registry aliases
    ``champion`` is the version the product serves; ``challenger`` the newest candidate. The first version
    of a model becomes ``champion``, later ones ``challenger`` (``register_and_alias``). ``promote`` is the
    explicit step that moves ``champion`` to a version, moves the old champion to ``previous_champion``
    (the rollback target) and drops ``challenger`` if it pointed at the promoted version.

Runs are driven through ``MlflowClient`` with explicit run ids, never the fluent ``mlflow.start_run``
global state, so concurrent runs in one process do not share an active run.

Importing this module sets defaults (``os.environ.setdefault``) for three MLflow variables: no artifact
download progress bars, and a connection pool of 10 + 10 overflow (see ``_batch_gate`` for why). MLflow and
alembic log at WARNING unless ``MLFLOW_LOGGING_LEVEL`` says otherwise.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

import mlflow.artifacts
import psycopg
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, RESOURCE_DOES_NOT_EXIST, ErrorCode
from mlflow.tracking import MlflowClient
from psycopg import sql
from sqlalchemy.engine import URL, make_url

DEFAULT_DATABASE = "mlflow"
DEFAULT_ARTIFACT_DIR = Path(".ffe") / "mlartifacts"
CHAMPION, CHALLENGER, PREVIOUS_CHAMPION = "champion", "challenger", "previous_champion"
# Model-version tag naming where in the version's run the walk-forward evidence (``ffe evaluate --version V``'s
# folder) lies; ``ffe models promote``'s gate reads it back (``Tracker.download_evidence``).
EVIDENCE_TAG, EVIDENCE_ARTIFACT_PATH = "ffe.evidence", "evidence"

RunStatus = Literal["FINISHED", "FAILED", "KILLED"]

_SQL_SCHEMES = ("postgresql", "mysql", "sqlite", "mssql")
# Advisory locks are scoped to the database they are taken in: one key per purpose is enough.
_SCHEMA_LOCK = int.from_bytes(hashlib.sha256(b"ffe.mlflow.schema").digest()[:8], "big", signed=True)
_CREATE_DB_LOCK = int.from_bytes(hashlib.sha256(b"ffe.mlflow.create-database").digest()[:8], "big", signed=True)
_LOCK_TIMEOUT = "300s"  # a fresh schema takes seconds; a starter stuck longer than this is reported, not awaited

_schema_ready: set[str] = set()
_schema_ready_lock = threading.Lock()
_non_pg_init_lock = threading.Lock()


def quiet_mlflow_logging(level: int = logging.WARNING) -> None:
    """MLflow logs table creation and every migration at INFO, and draws download progress bars, on stderr."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # read by MLflow at each download
    if os.environ.get("MLFLOW_LOGGING_LEVEL"):
        return  # asked for explicitly
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(level)


quiet_mlflow_logging()

# MLflow's SqlAlchemyStore.log_batch holds one pooled connection and opens a second one inside it (metrics,
# params and tags are written in nested sessions). With SQLAlchemy's default pool (5 + 10 overflow), 15 threads
# can each hold their first connection and all wait for a second: nothing moves until the 30 s pool timeout
# fails them. So log_batch calls are gated per process to half the pool's capacity, and the pool defaults to
# 10 kept connections (overflow connections are closed on return, and a new Postgres connection costs ms).
# Both pool sizes stay settable through MLflow's own MLFLOW_SQLALCHEMYSTORE_* variables.
os.environ.setdefault("MLFLOW_SQLALCHEMYSTORE_POOL_SIZE", "10")
os.environ.setdefault("MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW", "10")
_gates: dict[str, threading.BoundedSemaphore | None] = {}
_gates_lock = threading.Lock()


def _batch_gate(uri: str) -> threading.BoundedSemaphore | None:
    """At most half the connection pool's capacity in concurrent log_batch calls (None: no limit needed)."""
    with _gates_lock:
        if uri not in _gates:
            from mlflow.environment_variables import (
                MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW,
                MLFLOW_SQLALCHEMYSTORE_POOL_SIZE,
                MLFLOW_SQLALCHEMYSTORE_POOLCLASS,
            )

            size = MLFLOW_SQLALCHEMYSTORE_POOL_SIZE.get() or 5  # SQLAlchemy's defaults when unset
            overflow = MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW.get()
            overflow = 10 if overflow is None else overflow
            unbounded = MLFLOW_SQLALCHEMYSTORE_POOLCLASS.get() == "NullPool" or overflow < 0
            gated = is_database_uri(uri) and not unbounded
            _gates[uri] = threading.BoundedSemaphore(max(1, (size + overflow) // 2)) if gated else None
        return _gates[uri]


# --- where MLflow points ------------------------------------------------------------------------------


def sqlalchemy_url(libpq_url: str, database: str | None = None) -> str:
    """A libpq URL or conninfo string as a ``postgresql+psycopg://`` SQLAlchemy URL, optionally another database.

    A unix-socket directory (``host=/tmp/...``) and host lists stay query parameters, as libpq has them.
    """
    params = psycopg.conninfo.conninfo_to_dict(libpq_url)
    user = params.pop("user", None)
    password = params.pop("password", None)
    dbname = database or params.pop("dbname", None)
    params.pop("dbname", None)
    host, port = params.pop("host", None), params.pop("port", None)
    query: dict[str, str] = {k: str(v) for k, v in params.items() if v is not None}
    tcp_host = host is not None and "/" not in str(host) and "," not in str(host) and str(host) != ""
    if host is not None and not tcp_host:
        query["host"] = str(host)
        if port is not None:
            query["port"] = str(port)
    url = URL.create(
        "postgresql+psycopg",
        username=None if user is None else str(user),
        password=None if password is None else str(password),
        host=str(host) if tcp_host else None,
        port=int(port) if tcp_host and port is not None and "," not in str(port) else None,
        database=None if dbname is None else str(dbname),
        query=query,
    )
    return url.render_as_string(hide_password=False)


def libpq_conninfo(sqlalchemy_uri: str) -> str:
    """The psycopg conninfo for a ``postgresql[+driver]://`` SQLAlchemy URL (the inverse of ``sqlalchemy_url``)."""
    url = make_url(sqlalchemy_uri)
    params: dict[str, Any] = {
        k: ",".join(v) if isinstance(v, tuple) else v for k, v in url.query.items() if k not in ("host", "port")
    }
    host = url.query.get("host", url.host)
    port = url.query.get("port", url.port)
    params.update(
        user=url.username,
        password=url.password,
        dbname=url.database,
        host=",".join(host) if isinstance(host, tuple) else host,
        port=",".join(port) if isinstance(port, tuple) else port,
    )
    return psycopg.conninfo.make_conninfo(**{k: v for k, v in params.items() if v is not None})


def create_database(cluster_url: str, database: str = DEFAULT_DATABASE) -> None:
    """Create ``database`` in the cluster of ``cluster_url`` if it is missing; safe when many starters race."""
    admin = psycopg.conninfo.make_conninfo(cluster_url, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = "SELECT 1 FROM pg_database WHERE datname = %s"
        if conn.execute(exists, (database,)).fetchone() is not None:
            return
        # CREATE DATABASE cannot run in a transaction, so the lock is session-level (released on close).
        conn.execute("SELECT pg_advisory_lock(%s)", (_CREATE_DB_LOCK,))
        try:
            if conn.execute(exists, (database,)).fetchone() is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        except (psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
            pass  # created meanwhile by a starter that did not take our lock
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_CREATE_DB_LOCK,))


def tracking_uri(
    cluster_url: str | None = None,
    *,
    database: str = DEFAULT_DATABASE,
    environ: Mapping[str, str] | None = None,
) -> str:
    """``MLFLOW_TRACKING_URI`` if set, else database ``database`` (created when missing) in ``cluster_url``.

    Raises:
        ValueError: neither ``MLFLOW_TRACKING_URI`` nor a cluster URL.
    """
    env = os.environ if environ is None else environ
    if env.get("MLFLOW_TRACKING_URI"):
        return with_psycopg_driver(env["MLFLOW_TRACKING_URI"])
    if not cluster_url:
        raise ValueError("no MLflow backend: set MLFLOW_TRACKING_URI or pass the embedded cluster's URL")
    create_database(cluster_url, database)
    return sqlalchemy_url(cluster_url, database)


def with_psycopg_driver(uri: str) -> str:
    """``postgresql://`` / ``postgres://`` name SQLAlchemy's psycopg2 driver, which ffe does not ship: use psycopg 3."""
    scheme, sep, rest = uri.partition("://")
    return f"postgresql+psycopg{sep}{rest}" if sep and scheme in ("postgresql", "postgres") else uri


def artifact_root(local_dir: Path | str = DEFAULT_ARTIFACT_DIR, *, environ: Mapping[str, str] | None = None) -> str:
    """``MLFLOW_ARTIFACT_ROOT`` (``s3://ffe-<stage>-models/mlflow`` in AWS) if set, else ``local_dir`` as a file URI."""
    env = os.environ if environ is None else environ
    if env.get("MLFLOW_ARTIFACT_ROOT"):
        return env["MLFLOW_ARTIFACT_ROOT"].rstrip("/")
    return Path(local_dir).absolute().as_uri()


def is_database_uri(uri: str) -> bool:
    return urlparse(uri).scheme.split("+", 1)[0] in _SQL_SCHEMES


# --- schema once ---------------------------------------------------------------------------------------


def ensure_tracking_schema(uri: str, *, default_artifact_root: str | None = None) -> None:
    """Create (or find) MLflow's tables and default experiment once, under a PostgreSQL advisory lock.

    Every concurrent starter takes the lock in turn: the first one runs MLflow's table creation and
    alembic migrations, the others find the schema at head. Tracking servers (ARN, http) own their schema:
    nothing to do. A database at an older MLflow schema is reported by MLflow, not upgraded here: that is
    ``mlflow db upgrade <uri>`` after a backup.
    """
    uri = with_psycopg_driver(uri)
    if uri in _schema_ready or not is_database_uri(uri):
        return
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore as RegistryStore
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore as TrackingStore

    root = default_artifact_root or artifact_root()

    def construct() -> None:
        TrackingStore(uri, root)  # tables, migrations to head, default experiment
        RegistryStore(uri)

    if make_url(uri).get_backend_name() != "postgresql":
        with _non_pg_init_lock:  # only threads of this process: ffe's backend store is PostgreSQL
            construct()
    else:
        with psycopg.connect(libpq_conninfo(uri), autocommit=True) as conn:
            conn.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(_LOCK_TIMEOUT)))
            conn.execute("SELECT pg_advisory_lock(%s)", (_SCHEMA_LOCK,))
            try:
                construct()
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (_SCHEMA_LOCK,))
    with _schema_ready_lock:
        _schema_ready.add(uri)


# --- the tracker ---------------------------------------------------------------------------------------


class ModelNotFoundError(LookupError):
    """No registered model, or no version under the requested alias."""


def _is(exc: MlflowException, code: int) -> bool:
    return exc.error_code == ErrorCode.Name(code)


class Tracker:
    """Runs, metrics, artifacts and the model registry of one experiment, over its own ``MlflowClient``."""

    def __init__(self, uri: str, experiment: str, artifact_location: str | None = None) -> None:
        uri = with_psycopg_driver(uri)
        ensure_tracking_schema(uri)
        self.uri = uri
        self.client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        self.experiment_id = self._experiment(experiment, artifact_location)
        self._gate = _batch_gate(uri)

    def _log_batch(
        self,
        run_id: str,
        metrics: list[Metric] | None = None,
        params: list[Param] | None = None,
        tags: list[RunTag] | None = None,
    ) -> None:
        with self._gate or nullcontext():
            self.client.log_batch(run_id, metrics or (), params or (), tags or ())

    def _experiment(self, name: str, artifact_location: str | None) -> str:
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return str(found.experiment_id)
        if artifact_location is None and (os.environ.get("MLFLOW_ARTIFACT_ROOT") or is_database_uri(self.uri)):
            artifact_location = f"{artifact_root()}/{name}"
        try:
            return str(self.client.create_experiment(name, artifact_location=artifact_location))
        except MlflowException as exc:  # another trainer created it first
            found = self.client.get_experiment_by_name(name)
            if not _is(exc, RESOURCE_ALREADY_EXISTS) or found is None:
                raise
            return str(found.experiment_id)

    # --- runs ---

    def start_run(
        self, run_name: str, params: Mapping[str, Any] | None = None, tags: Mapping[str, str] | None = None
    ) -> str:
        run = self.client.create_run(self.experiment_id, run_name=run_name, tags=dict(tags or {}))
        if params:
            self._log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in params.items()])
        return str(run.info.run_id)

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int) -> None:
        """All of one step's metrics in one ``log_batch`` call: a few statements per step, not per value."""
        now = int(time.time() * 1000)
        self._log_batch(run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()])

    def log_data_hashes(self, run_id: str, hashes: Mapping[str, str]) -> None:
        """The training data a run saw, as params ``data.<name>.sha256`` (params are immutable, as that is)."""
        self._log_batch(run_id, params=[Param(f"data.{name}.sha256", h) for name, h in hashes.items()])

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        self._log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_artifacts(self, run_id: str, local_dir: Path | str, artifact_path: str | None = None) -> None:
        self.client.log_artifacts(run_id, str(local_dir), artifact_path)

    def end_run(self, run_id: str, status: RunStatus = "FINISHED") -> None:
        self.client.set_terminated(run_id, status)

    @contextmanager
    def run(
        self, run_name: str, params: Mapping[str, Any] | None = None, tags: Mapping[str, str] | None = None
    ) -> Iterator[str]:
        """A run that ends FINISHED, FAILED when its body raises, KILLED on Ctrl-C: never left RUNNING."""
        run_id = self.start_run(run_name, params, tags)
        try:
            yield run_id
        except Exception:
            self.end_run(run_id, "FAILED")
            raise
        except BaseException:
            self.end_run(run_id, "KILLED")
            raise
        self.end_run(run_id, "FINISHED")

    # --- registry ---

    def register(self, run_id: str, artifact_path: str, model_name: str) -> str:
        """A new version of ``model_name`` (created if missing) whose source is the run's ``artifact_path``."""
        try:
            self.client.create_registered_model(model_name)
        except MlflowException as exc:
            if not _is(exc, RESOURCE_ALREADY_EXISTS):
                raise
        source = f"{self.client.get_run(run_id).info.artifact_uri.rstrip('/')}/{artifact_path.strip('/')}"
        version = self.client.create_model_version(model_name, source, run_id=run_id)
        return str(version.version)

    def set_alias(self, model_name: str, alias: str, version: str) -> None:
        self.client.set_registered_model_alias(model_name, alias, str(version))

    def version_for_alias(self, model_name: str, alias: str) -> str | None:
        # Read from the registered model's alias map: get_model_version_by_alias reports a missing alias
        # as INVALID_PARAMETER_VALUE, which cannot be told apart from a malformed request.
        try:
            aliases = self.client.get_registered_model(model_name).aliases
        except MlflowException as exc:
            if _is(exc, RESOURCE_DOES_NOT_EXIST):
                return None
            raise
        version = aliases.get(alias)
        return None if version is None else str(version)

    def register_and_alias(self, run_id: str, artifact_path: str, model_name: str) -> tuple[str, str]:
        """Register a version; the model's first becomes ``champion``, later ones ``challenger``.

        Returns:
            (version, alias given).
        """
        version = self.register(run_id, artifact_path, model_name)
        alias = CHALLENGER if self.version_for_alias(model_name, CHAMPION) is not None else CHAMPION
        self.set_alias(model_name, alias, version)
        return version, alias

    def promote(self, model_name: str, version: str) -> None:
        """Move ``champion`` to ``version`` and the old champion to ``previous_champion`` (the rollback target).

        ``challenger`` is dropped when it pointed at the promoted version; promoting the champion is a no-op.
        """
        old = self.version_for_alias(model_name, CHAMPION)
        if old == str(version):
            return
        if old is not None:
            self.set_alias(model_name, PREVIOUS_CHAMPION, old)
        self.set_alias(model_name, CHAMPION, version)
        if self.version_for_alias(model_name, CHALLENGER) == str(version):
            self.client.delete_registered_model_alias(model_name, CHALLENGER)

    def download(self, model_name: str, alias: str, dst_dir: Path | str) -> Path:
        """The artifacts of the version under ``alias``, downloaded into ``dst_dir``; the path of the model dir.

        That path is ``dst_dir/<last part of the registered artifact path>`` (``dst_dir/model`` for ``"model"``).

        Raises:
            ModelNotFoundError: no such model or alias.
        """
        version = self.version_for_alias(model_name, alias)
        if version is None:
            raise ModelNotFoundError(f"model {model_name!r} has no version aliased {alias!r}")
        source = self.client.get_model_version_download_uri(model_name, version)
        Path(dst_dir).mkdir(parents=True, exist_ok=True)
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(dst_dir)))

    # --- model-version tags and the walk-forward evidence ---

    def model_version(self, model_name: str, version: str) -> Any:
        """The registered version (an ``mlflow.entities.model_registry.ModelVersion``).

        Raises:
            ModelNotFoundError: no such model or version.
        """
        try:
            return self.client.get_model_version(model_name, str(version))
        except MlflowException as exc:
            if _is(exc, RESOURCE_DOES_NOT_EXIST):
                raise ModelNotFoundError(f"model {model_name!r} has no version {version!r}") from None
            raise

    def model_version_tags(self, model_name: str, version: str) -> dict[str, str]:
        return dict(self.model_version(model_name, version).tags)

    def set_model_version_tags(self, model_name: str, version: str, tags: Mapping[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_model_version_tag(model_name, str(version), key, str(value))

    def attach_evidence(
        self, model_name: str, version: str, folder: Path | str, artifact_path: str = EVIDENCE_ARTIFACT_PATH
    ) -> None:
        """``folder`` (an ``ffe evaluate`` report) as the version's run artifacts under ``artifact_path``, and the
        version tagged ``ffe.evidence`` = ``artifact_path`` (what ``download_evidence`` reads back)."""
        run_id = self.model_version(model_name, version).run_id
        self.log_artifacts(run_id, folder, artifact_path)
        self.set_model_version_tags(model_name, version, {EVIDENCE_TAG: artifact_path})

    def download_evidence(self, model_name: str, version: str, dst: Path | str) -> Path | None:
        """The version's walk-forward evidence folder downloaded into ``dst``; None when the version has none.

        Raises:
            ModelNotFoundError: no such model or version.
        """
        mv = self.model_version(model_name, version)
        artifact_path = mv.tags.get(EVIDENCE_TAG)
        if not artifact_path or not mv.run_id:
            return None
        Path(dst).mkdir(parents=True, exist_ok=True)
        return Path(self.client.download_artifacts(mv.run_id, artifact_path, str(dst)))
