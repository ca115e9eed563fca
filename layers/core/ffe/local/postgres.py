"""An embedded PostgreSQL for local runs and tests.

Order of preference: ``DATABASE_URL`` if set; else a cluster made with the machine's own Postgres
binaries (initdb + pg_ctl, unix socket only, run as the ``postgres`` user when we are root, because
initdb refuses root); else ``pgserver`` (Postgres in a wheel) when it is installed.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

DB_NAME = "ffe"
_PORT = 5432  # only names the socket file; the cluster never listens on TCP


class PostgresUnavailableError(RuntimeError):
    """No DATABASE_URL, no Postgres binaries and no pgserver: say how to get one."""


@dataclass
class EmbeddedPostgres:
    """A cluster in ``data_dir`` (created on first start, kept between starts)."""

    data_dir: Path
    url: str = ""
    kind: str = ""
    _stop_on_close: bool = field(default=False, repr=False)
    _pgserver: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).absolute()  # pg_ctl runs with the data dir as cwd

    def start(self) -> EmbeddedPostgres:
        if os.environ.get("DATABASE_URL"):
            self.url, self.kind = os.environ["DATABASE_URL"], "DATABASE_URL"
            return self
        bindir = find_bindir()
        if bindir is not None:
            self._start_cluster(bindir)
        else:
            self._start_pgserver()
        _ensure_database(self.url)
        return self

    def stop(self) -> None:
        if not self._stop_on_close:
            return
        if self._pgserver is not None:
            self._pgserver.cleanup()
        else:
            bindir = find_bindir()
            assert bindir is not None
            _run_as_owner([str(bindir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"], self.data_dir)
            shutil.rmtree(socket_dir(self.data_dir), ignore_errors=True)
        self._stop_on_close = False

    def stop_if_running(self) -> None:
        """Stop a cluster in ``data_dir`` whoever started it (``ffe reset``)."""
        bindir = find_bindir()
        if bindir is not None and (self.data_dir / "PG_VERSION").exists():
            pg_ctl = [str(bindir / "pg_ctl"), "-D", str(self.data_dir)]
            if _run_as_owner([*pg_ctl, "status"], self.data_dir, check=False).returncode == 0:
                _run_as_owner([*pg_ctl, "-m", "fast", "-w", "stop"], self.data_dir)
        shutil.rmtree(socket_dir(self.data_dir), ignore_errors=True)

    def __enter__(self) -> EmbeddedPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- cluster from the machine's binaries --------------------------------------------------------

    def _start_cluster(self, bindir: Path) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        sock = socket_dir(self.data_dir)
        _give_to_owner(self.data_dir)
        _give_to_owner(sock)
        if not (self.data_dir / "PG_VERSION").exists():
            _run_as_owner(
                [str(bindir / "initdb"), "-D", str(self.data_dir), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                 "--no-instructions", "--locale=C"],
                self.data_dir,
            )  # fmt: skip
        status = _run_as_owner([str(bindir / "pg_ctl"), "-D", str(self.data_dir), "status"], self.data_dir, check=False)
        if status.returncode != 0:
            options = f"-c listen_addresses='' -c unix_socket_directories={sock} -p {_PORT} -c fsync=off"
            log = self.data_dir / "server.log"
            _run_as_owner(
                [str(bindir / "pg_ctl"), "-D", str(self.data_dir), "-l", str(log), "-o", options, "-w", "-t", "60",
                 "start"],
                self.data_dir,
            )  # fmt: skip
            self._stop_on_close = True
        self.url = f"postgresql://postgres@/{DB_NAME}?host={sock}&port={_PORT}"
        self.kind = f"cluster from {bindir} in {self.data_dir}"

    # --- pgserver fallback ---------------------------------------------------------------------------

    def _start_pgserver(self) -> None:
        try:
            import pgserver  # type: ignore[import-not-found]
        except ImportError:
            raise PostgresUnavailableError(
                "no PostgreSQL found: set DATABASE_URL, install the server binaries "
                "(e.g. `apt-get install postgresql`), or `pip install pgserver`"
            ) from None
        self._pgserver = pgserver.get_server(str(self.data_dir), cleanup_mode="stop")
        self.url = self._pgserver.get_uri(DB_NAME)
        self.kind = f"pgserver in {self.data_dir}"
        self._stop_on_close = True


def find_bindir() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``: PATH, ``pg_config --bindir``, Debian's layout."""
    candidates: list[Path] = []
    if shutil.which("initdb"):
        candidates.append(Path(shutil.which("initdb")).parent)  # type: ignore[arg-type]
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=False)  # noqa: S607
        candidates.append(Path(out.stdout.strip()))
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    for path in candidates:
        if (path / "initdb").exists() and (path / "pg_ctl").exists():
            return path
    return None


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


def _ensure_database(url: str) -> None:
    admin = psycopg.conninfo.make_conninfo(url, dbname="postgres")
    deadline = time.monotonic() + 30
    while True:
        try:
            with psycopg.connect(admin, autocommit=True) as conn:
                if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,)).fetchone() is None:
                    conn.execute(f'CREATE DATABASE "{DB_NAME}"')
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
