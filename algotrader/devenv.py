"""`make run` for a development machine: writes ``.env`` with fresh secrets the first time, makes
sure Redis and PostgreSQL answer (``algotrader.devservers``), migrates, creates the operator once
and starts the Procfile with honcho. The environment beats ``.env``: ``WEB_PORT=8010 make run``.

    python -m algotrader.devenv run | env | pytest ARGS     # make run, only .env, make pytest
"""

from __future__ import annotations

import base64
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from algotrader.devservers import (
    LOCAL_HOSTS,
    DatabaseUnavailable,
    PrivatePostgres,
    postgres_ready,
    redis_answers,
    redis_start,
    say,
)
from algotrader.processes import DEFAULT_DATABASE_URL, ROOT, ProcessGroup, honcho_concurrency, log_format, manage

GENERATED = {
    "SECRET_KEY": lambda: secrets.token_urlsafe(50),
    "JWT_SIGNING_KEY": lambda: secrets.token_urlsafe(50),
    "FIELD_ENCRYPTION_KEYS": lambda: base64.urlsafe_b64encode(os.urandom(32)).decode(),
    "FLOWER_BASIC_AUTH": lambda: f"operator:{secrets.token_urlsafe(12)}",
}
REDIS_INSTALL_HINT = """\
Nothing answers at REDIS_URL={url}, and redis-server is not installed.
Install Redis, then run `make run` again:
  Debian/Ubuntu:  sudo apt-get install redis-server
  macOS:          brew install redis
(or point REDIS_URL in .env at a Redis server you already run)."""


def write_env(example: Path, target: Path) -> bool:
    if target.exists():
        return False
    lines = []
    for line in example.read_text().splitlines():
        name, sep, _ = line.partition("=")
        if sep and not line.lstrip().startswith("#") and name.strip() in GENERATED:
            line = f"{name.strip()}={GENERATED[name.strip()]()}"
        lines.append(line)
    target.write_text("\n".join(lines) + "\n")
    target.chmod(0o600)
    return True


def read_env(path: Path) -> dict[str, str]:
    """``.env`` as honcho reads it, overridden by whatever the environment sets."""
    from honcho.environ import parse

    values: dict[str, str] = dict(parse(path.read_text())) if path.exists() else {}
    return {**values, **os.environ}


def kite_simulator_start(env: dict[str, str], group: ProcessGroup) -> None:
    """``BROKER=kite-sim``: the Kite simulator runs beside the stack, and every process's
    Kite settings point at it (its exchange is the always-open simulated one)."""
    import requests

    port, ws_port = env.get("KITE_SIM_PORT") or "8700", env.get("KITE_SIM_WS_PORT") or "8701"
    root = f"http://127.0.0.1:{port}"
    # Its login page sends the browser back to this stack's web process, whatever its port.
    redirect_url = f"http://{env.get('WEB_HOST') or '127.0.0.1'}:{env.get('WEB_PORT') or '8000'}/kite/callback/"
    env.update(
        KITE_API_ROOT=root,
        KITE_WS_ROOT=f"ws://127.0.0.1:{ws_port}",
        KITE_LOGIN_URL=f"{root}/connect/login",
        KITE_REDIRECT_URL=redirect_url,
        KITE_SIMULATED="true",
    )
    say(f"BROKER=kite-sim: starting the Kite simulator at {root} (ticker ws://127.0.0.1:{ws_port})")
    group.start(
        "kite_sim", manage("run_kite_sim", "--port", port, "--ws-port", ws_port, "--redirect-url", redirect_url)
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            if requests.get(f"{root}/_sim/health", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        if not group.alive("kite_sim") or time.monotonic() > deadline:
            sys.exit(f"the Kite simulator did not start; its log:\n{group.log('kite_sim')}")
        time.sleep(0.2)


def banner(env: dict[str, str], operator: str) -> str:
    web = f"http://{env.get('WEB_HOST') or '127.0.0.1'}:{env.get('WEB_PORT') or '8000'}"
    flower = f"http://{env.get('FLOWER_ADDRESS') or '127.0.0.1'}:{env.get('FLOWER_PORT') or '5555'}"
    flower_user, _, flower_password = (env.get("FLOWER_BASIC_AUTH") or "").partition(":")
    demo_broker = " BROKER=kite-sim" if env.get("BROKER") == "kite-sim" else ""
    return "\n".join(
        [
            "",
            "=" * 72,
            "algotrader is up. Look at:",
            *(f"  {line.strip()}" for line in operator.splitlines()),
            f"  API docs (Swagger UI)  {web}/api/v1/docs/",
            f"  Django admin           {web}/admin/   (log in as the operator)",
            f"  Flower                 {flower}/   (user {flower_user}, password {flower_password})",
            f"  Health                 {web}/healthz",
            f"Then, in another terminal: `make demo{demo_broker}` ({'four' if demo_broker else 'three'} strategies,"
            " live timelines).",
            "Ctrl-C stops everything.",
            "=" * 72,
            "",
        ]
    )


def announce_when_ready(env: dict[str, str], operator: str, stop: threading.Event) -> None:
    """Print the banner once the web process answers, after honcho's start-up lines."""
    import requests

    url = f"http://{env.get('WEB_HOST') or '127.0.0.1'}:{env.get('WEB_PORT') or '8000'}/healthz"
    deadline = time.monotonic() + 90
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=2).status_code in (200, 503):
                break
        except requests.RequestException:
            pass
        stop.wait(0.5)
    if not stop.is_set():
        say(banner(env, operator))


def run(root: Path) -> int:
    if write_env(root / ".env.example", root / ".env"):
        say("Wrote .env with freshly generated secrets (git-ignored; keep it private).")
    env = read_env(root / ".env")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    run_dir = root / (env.get("RUN_DIR") or "var")
    try:
        concurrency = honcho_concurrency(env)
        # Text log lines carry their own time and process name; JSON ones need honcho's.
        concurrency += ["--no-prefix"] if log_format(env) == "text" else []
    except ValueError as error:
        say(f"{error}: fix it in .env.")
        return 1
    redis_url = env.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    env["DATABASE_URL"] = env.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    services = ProcessGroup(run_dir / "logs", env)
    database: PrivatePostgres | None = None
    stop = threading.Event()
    honcho: subprocess.Popen[bytes] | None = None

    def forward(signum: int, _frame: object) -> None:
        stop.set()
        if honcho is not None and honcho.poll() is None:
            honcho.send_signal(signum)

    try:
        if not redis_answers(redis_url) and not redis_start(redis_url, run_dir, services):
            parts = urlsplit(redis_url)
            if (parts.hostname or "") not in LOCAL_HOSTS:
                say(f"Nothing answers at REDIS_URL={redis_url}: start that Redis server, or change REDIS_URL in .env.")
            else:
                say(REDIS_INSTALL_HINT.format(url=redis_url))
            return 1
        database = postgres_ready(env["DATABASE_URL"], run_dir / "postgres", services.log_path("postgres"))
        if (env.get("BROKER") or "paper") == "kite-sim":
            kite_simulator_start(env, services)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        say("Migrating the database and collecting static files...")
        for command in (
            ["migrate", "--noinput", "-v", "0"],
            ["collectstatic", "--noinput", "-v", "0"],
            ["metrics_reset", "-v", "0"],  # a previous run's metric samples must not add to this run's
        ):
            subprocess.run(manage(*command), cwd=root, env=env, check=True)  # noqa: S603 - our own command
        operator = subprocess.run(  # noqa: S603 - our own command
            manage("ensure_operator"), cwd=root, env=env, check=True, capture_output=True, text=True
        ).stdout.strip()
        say(operator)
        # honcho would let .env override the environment: hand it the merged one and an empty file.
        empty = run_dir / "honcho.env"
        empty.write_text("")
        threading.Thread(target=announce_when_ready, args=(env, operator, stop), daemon=True).start()
        honcho = subprocess.Popen(  # noqa: S603 - honcho from this venv
            [
                str(Path(sys.executable).parent / "honcho"),
                "-e",
                str(empty),
                "-f",
                str(root / "Procfile"),
                "start",
                *concurrency,
            ],
            cwd=root,
            env=env,
        )
        code = honcho.wait()
        return 0 if stop.is_set() else code  # Ctrl-C is how a session ends, not a failure
    except DatabaseUnavailable as error:
        say(f"{error}\nNothing else was started.")
        return 1
    except subprocess.CalledProcessError as error:
        if error.stderr:
            say(error.stderr)
        say(f"`{' '.join(error.cmd[1:])}` failed (exit {error.returncode}); nothing else was started.")
        return 1
    finally:
        stop.set()
        if honcho is not None and honcho.poll() is None:
            honcho.terminate()
            honcho.wait(timeout=30)
        if services.processes:
            say(f"Stopping {', '.join(services.processes)}")
            services.stop_all()
        if database is not None:  # last: the processes above may still be writing to it
            say("Stopping PostgreSQL")
            database.stop()


def pytest(root: Path, args: list[str]) -> int:
    """`make pytest`: pytest with ``args`` against DATABASE_URL; when nothing answers at
    its local host and port, a private PostgreSQL stands there for the run (data kept in
    the run folder's ``test-postgres``, without fsync: tests need speed, not durability)."""
    run_dir = root / (os.environ.get("RUN_DIR") or "var")
    try:
        database = postgres_ready(
            os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL,
            run_dir / "test-postgres",
            run_dir / "logs" / "test-postgres.log",
            durable=False,
        )
    except DatabaseUnavailable as error:
        say(str(error))
        return 1
    try:
        tests = subprocess.Popen([sys.executable, "-m", "pytest", *args], cwd=root)  # noqa: S603 - pytest itself

        def forward(signum: int, _frame: object) -> None:
            # Ctrl-C reaches pytest from the terminal already; a SIGTERM is passed on.
            if signum != signal.SIGINT and tests.poll() is None:
                tests.send_signal(signum)

        signal.signal(signal.SIGINT, forward)
        signal.signal(signal.SIGTERM, forward)
        return tests.wait()
    finally:
        if database is not None:
            database.stop()


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "env"
    root = ROOT
    if command == "env":
        if write_env(root / ".env.example", root / ".env"):
            say("wrote .env with freshly generated secrets")
        return 0
    if command == "run":
        return run(root)
    if command == "pytest":
        return pytest(root, [arg for arg in argv[1:] if arg != "--"])
    say(__doc__ or "")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
