"""An embedded PostgreSQL for local runs and tests.

Order of preference: ``DATABASE_URL`` if set; else a cluster made with the machine's own Postgres
binaries (initdb + pg_ctl, unix socket only, run as the ``postgres`` user when we are root, because
initdb refuses root); else ``pgserver`` (Postgres in a wheel) when it is installed.

Processes share a cluster made from the machine's binaries (``ffe api`` running while ``ffe run`` comes and
goes): each holds a shared ``flock`` on ``<data dir>.users`` while it uses the cluster, and creating, starting
and stopping happen under an exclusive ``flock`` on ``<data dir>.lock``. The last user to leave stops the
cluster. The kernel drops the locks of a process that dies, so a killed user leaves no reference behind: the
next user reuses the running cluster and stops it when it leaves.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import hashlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from ffe.local.errors import LocalError, StateInUseError

DB_NAME = "ffe"
_PORT = 5432  # only names the socket file; the cluster never listens on TCP


class PostgresUnavailableError(LocalError):
    """No DATABASE_URL, no Postgres binaries and no pgserver, or the cluster could not be made or started."""


@dataclass
class EmbeddedPostgres:
    """A cluster in ``data_dir`` (created on first start, kept between starts, shared between processes)."""

    data_dir: Path
    url: str = ""
    kind: str = ""
    _user_lock: int | None = field(default=None, repr=False)  # our shared lock on the users file, while we use it
    _pgserver: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).absolute()  # pg_ctl runs with the data dir as cwd

    @property
    def lock_files(self) -> tuple[Path, Path]:
        """The control lock and the users lock, beside the data dir (initdb wants the data dir to itself)."""
        name = self.data_dir.name
        return self.data_dir.with_name(f"{name}.lock"), self.data_dir.with_name(f"{name}.users")

    def start(self) -> EmbeddedPostgres:
        if os.environ.get("DATABASE_URL"):
            self.url, self.kind = os.environ["DATABASE_URL"], "DATABASE_URL"
            return self
        bindir = find_bindir()
        if bindir is None:
            self._start_pgserver()
            _ensure_database(self.url)
            return self
        control, users = self.lock_files
        with _locked(control, fcntl.LOCK_EX):
            self._user_lock = _lock(users, fcntl.LOCK_SH)
            try:
                self._start_cluster(bindir)
                _ensure_database(self.url)
            except BaseException:
                self._leave(bindir)
                raise
        return self

    def stop(self) -> None:
        """Stop using the cluster; the last process to stop using it stops the server."""
        if self._pgserver is not None:
            self._pgserver.cleanup()
            self._pgserver = None
        if self._user_lock is None:
            return
        with _locked(self.lock_files[0], fcntl.LOCK_EX):
            self._leave(find_bindir())

    def running(self) -> bool:
        """Whether a server runs on ``data_dir`` (whoever started it)."""
        bindir = find_bindir()
        if bindir is None or not (self.data_dir / "PG_VERSION").exists():
            return False
        return _server_running(bindir, self.data_dir)

    @contextlib.contextmanager
    def stopped(self) -> Iterator[None]:
        """Stop the server, whoever started it, and keep other processes from starting it until the block ends.

        Raises StateInUseError, stopping nothing, while another process uses the cluster (``ffe reset``).
        """
        control, users = self.lock_files
        with _locked(control, fcntl.LOCK_EX):
            try:
                alone = _lock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StateInUseError(
                    f"the Postgres in {self.data_dir} is in use by another ffe command (`ffe api`, `ffe run`?): "
                    "stop it first"
                ) from None
            try:
                self._stop_server(find_bindir())
                yield
            finally:
                os.close(alone)

    def __enter__(self) -> EmbeddedPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- cluster from the machine's binaries (callers hold the control lock) -------------------------

    def _leave(self, bindir: Path | None) -> None:
        """Drop our reference; stop the server when no other process holds one."""
        if self._user_lock is not None:
            os.close(self._user_lock)
            self._user_lock = None
        try:
            alone = _lock(self.lock_files[1], fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # another process still uses it: the last one out stops it
        try:
            self._stop_server(bindir)
        finally:
            os.close(alone)

    def _stop_server(self, bindir: Path | None) -> None:
        if bindir is not None and self.running():
            _run_as_owner([str(bindir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"], self.data_dir)
        shutil.rmtree(socket_dir(self.data_dir), ignore_errors=True)

    def _start_cluster(self, bindir: Path) -> None:
        sock = socket_dir(self.data_dir)
        _give_to_owner(sock)
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb(bindir)
        _give_to_owner(self.data_dir)  # and, again, its parents reachable by the owner
        if not _server_running(bindir, self.data_dir):
            options = f"-c listen_addresses='' -c unix_socket_directories={sock} -p {_PORT} -c fsync=off"
            log = self.data_dir / "server.log"
            _run_as_owner(
                [
                    str(bindir / "pg_ctl"),
                    "-D",
                    str(self.data_dir),
                    "-l",
                    str(log),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    "60",
                    "start",
                ],
                self.data_dir,
            )
        self.url = f"postgresql://postgres@/{DB_NAME}?host={sock}&port={_PORT}"
        self.kind = f"cluster from {bindir} in {self.data_dir}"

    def _initdb(self, bindir: Path) -> None:
        """Make the cluster beside ``data_dir`` and move it into place: an initdb cut short leaves no half cluster."""
        if self.data_dir.is_file() or (self.data_dir.is_dir() and any(self.data_dir.iterdir())):
            raise PostgresUnavailableError(
                f"{self.data_dir} exists but holds no Postgres cluster: move it away or use another --state-dir"
            )
        staging = self.data_dir.with_name(f".{self.data_dir.name}.initdb")
        shutil.rmtree(staging, ignore_errors=True)  # left by an initdb that was killed
        staging.mkdir(parents=True)
        _give_to_owner(staging)
        _run_as_owner(
            [
                str(bindir / "initdb"),
                "-D",
                str(staging),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-instructions",
                "--locale=C",
            ],
            staging,
        )
        staging.rename(self.data_dir)  # data_dir is absent or an empty folder

    # --- pgserver fallback ---------------------------------------------------------------------------

    def _start_pgserver(self) -> None:
        try:
            import pgserver
        except ImportError:
            raise PostgresUnavailableError(
                "no PostgreSQL found: set DATABASE_URL, install the server binaries "
                "(e.g. `apt-get install postgresql`), or `pip install pgserver`"
            ) from None
        self._pgserver = pgserver.get_server(str(self.data_dir), cleanup_mode="stop")
        self.url = self._pgserver.get_uri(DB_NAME)
        self.kind = f"pgserver in {self.data_dir}"


# The directory find_bindir found, by PATH: asking pg_config is a subprocess (15 ms), and a command asks three times.
_BINDIRS: dict[str, Path] = {}


def find_bindir() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``: PATH, ``pg_config --bindir``, Debian's layout.

    Searched once per PATH in a process; what was found is checked again at every call (and searched again if gone).
    """
    kept = _BINDIRS.get(os.environ.get("PATH", ""))
    if kept is not None and (kept / "initdb").exists() and (kept / "pg_ctl").exists():
        return kept
    candidates: list[Path] = []
    if shutil.which("initdb"):
        candidates.append(Path(shutil.which("initdb")).parent)  # type: ignore[arg-type]
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=False)  # noqa: S607
        candidates.append(Path(out.stdout.strip()))
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    for path in candidates:
        if (path / "initdb").exists() and (path / "pg_ctl").exists():
            _BINDIRS[os.environ.get("PATH", "")] = path
            return path
    return None


def _server_running(bindir: Path, data_dir: Path) -> bool:
    """``pg_ctl status``: whether a server runs on ``data_dir``.

    pg_ctl answers "no server running" when ``postmaster.pid`` is absent, so that case skips the subprocess
    (20 ms; every command asks twice); a pid file, or one we cannot look for, is left to pg_ctl to judge.
    """
    try:
        if not (data_dir / "postmaster.pid").exists():
            return False
    except OSError:
        pass
    status = _run_as_owner([str(bindir / "pg_ctl"), "-D", str(data_dir), "status"], data_dir, check=False)
    return status.returncode == 0


def socket_dir(data_dir: Path) -> Path:
    """A short socket directory: unix socket paths are limited to ~107 bytes, data dirs can be deep."""
    tag = hashlib.sha1(str(data_dir.resolve()).encode(), usedforsecurity=False).hexdigest()[:12]
    path = Path(tempfile.gettempdir()) / f"ffe-pg-{tag}"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def _owner() -> pwd.struct_passwd | None:
    """Postgres refuses to run as root: then we run it as the ``postgres`` user."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise PostgresUnavailableError("running as root and there is no 'postgres' user to run initdb as") from None


def _give_to_owner(path: Path) -> None:
    owner = _owner()
    if owner is not None:
        os.chown(path, owner.pw_uid, owner.pw_gid)
        # the owner must be able to reach the data dir through its parents
        for parent in path.resolve().parents:
            mode = parent.stat().st_mode
            if not mode & 0o001:
                with contextlib.suppress(PermissionError):
                    os.chmod(parent, mode | 0o001)


def _run_as_owner(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    owner = _owner()
    kwargs: dict[str, Any] = {}
    if owner is not None:
        kwargs = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False, **kwargs)  # noqa: S603
    if check and proc.returncode != 0:
        raise PostgresUnavailableError(f"{Path(cmd[0]).name} failed ({proc.returncode}): {proc.stderr or proc.stdout}")
    return proc


@contextlib.contextmanager
def _locked(path: Path, operation: int) -> Iterator[int]:
    fd = _lock(path, operation)
    try:
        yield fd
    finally:
        os.close(fd)


def _lock(path: Path, operation: int) -> int:
    """``path`` opened (created if need be) and ``flock``-ed with ``operation``; closing the descriptor unlocks.

    ``ffe reset`` deletes the lock files while it holds them: a lock won on a file no longer at ``path`` is
    taken again on the new one. Python's descriptors are not inherited, so the server never holds our locks.
    """
    while True:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, operation)
            held, current = os.fstat(fd), os.stat(path)
            if (held.st_dev, held.st_ino) == (current.st_dev, current.st_ino):
                return fd
        except FileNotFoundError:
            pass
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


def _ensure_database(url: str) -> None:
    admin = psycopg.conninfo.make_conninfo(url, dbname="postgres")
    deadline = time.monotonic() + 30
    while True:
        try:
            with psycopg.connect(admin, autocommit=True) as conn:
                if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,)).fetchone() is None:
                    with contextlib.suppress(psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
                        conn.execute(f'CREATE DATABASE "{DB_NAME}"')  # another client of the server may be first
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
