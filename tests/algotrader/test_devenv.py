"""`make run`'s start-up (algotrader.devenv): Redis is taken as it is when it answers,
started for the session when it does not and redis-server is installed (and stopped with
the session), and missing, it says what to install and starts nothing else. PostgreSQL
likewise: an answering DATABASE_URL is used as it is, and when nothing answers at its
local host and port a private server is started there, keeping its data across restarts."""

import shutil
from pathlib import Path

import pytest
import redis

from algotrader import devenv, devservers
from algotrader.processes import ProcessGroup, free_port, port_open
from tests.databases import database_drop, throwaway_database

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copy(ROOT / ".env.example", tmp_path / ".env.example")
    return tmp_path


def test_without_redis_installed_it_says_what_to_install_and_starts_nothing(project, monkeypatch, capsys):
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    monkeypatch.setenv("PATH", str(project))  # no redis-server to be found
    monkeypatch.setenv("RUN_DIR", str(project / "var"))

    code = devenv.run(project)

    said = capsys.readouterr().out
    assert code == 1
    assert "sudo apt-get install redis-server" in said and "brew install redis" in said
    assert not (project / "var" / "logs").exists() or not any((project / "var" / "logs").iterdir())
    assert "Migrating" not in said


def test_a_redis_server_is_started_for_the_session_on_the_port_of_redis_url(tmp_path):
    url = f"redis://127.0.0.1:{free_port()}/3"
    group = ProcessGroup(tmp_path / "logs")
    assert not devservers.redis_answers(url)

    try:
        started = devservers.redis_start(url, tmp_path, group)
        client = redis.Redis.from_url(url)
        client.set("k", "v")
        policy = client.config_get("maxmemory-policy")["maxmemory-policy"]
    finally:
        codes = group.stop_all()

    assert started and policy == "noeviction"
    assert (tmp_path / "redis").is_dir()
    assert codes == {"redis": 0} and not devservers.redis_answers(url)


def test_the_environment_beats_dot_env(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("WEB_PORT=8000\nFLOWER_PORT=5555\n")
    monkeypatch.setenv("WEB_PORT", "8010")

    values = devenv.read_env(tmp_path / ".env")

    assert values["WEB_PORT"] == "8010" and values["FLOWER_PORT"] == "5555"


def test_the_first_env_gets_fresh_secrets_and_a_second_run_keeps_it(project):
    assert devenv.write_env(project / ".env.example", project / ".env")
    first = (project / ".env").read_text()
    assert not devenv.write_env(project / ".env.example", project / ".env")

    values = dict(line.split("=", 1) for line in first.splitlines() if "=" in line and not line.startswith("#"))
    assert all(values[name] for name in devenv.GENERATED)
    assert (project / ".env").read_text() == first and (project / ".env").stat().st_mode & 0o777 == 0o600


def test_a_private_postgres_stands_where_nothing_answers_and_keeps_its_data_across_a_restart(tmp_path):
    port = free_port()
    url = f"postgres://postgres@127.0.0.1:{port}/algotrader"
    data, log = tmp_path / "postgres", tmp_path / "logs" / "postgres.log"

    first = devservers.postgres_ready(url, data, log)
    try:
        with devservers.postgres_connect(url) as connection:
            connection.execute("CREATE TABLE kept (value text)")
            connection.execute("INSERT INTO kept VALUES ('before the restart')")
    finally:
        first_code = first.stop() if first else None
    stopped_between = not port_open("127.0.0.1", port)
    second = devservers.postgres_ready(url, data, log)
    try:
        with devservers.postgres_connect(url) as connection:
            kept = connection.execute("SELECT value FROM kept").fetchall()
    finally:
        second_code = second.stop() if second else None

    assert first is not None and second is not None
    assert first_code == 0 and second_code == 0 and stopped_between
    assert kept == [("before the restart",)]
    assert (data / "PG_VERSION").exists() and not port_open("127.0.0.1", port)


def test_an_answering_database_url_is_used_as_it_is(tmp_path, capsys):
    with throwaway_database() as url:
        server = devservers.postgres_ready(url, tmp_path / "postgres", tmp_path / "postgres.log")

    assert server is None
    assert not (tmp_path / "postgres").exists()
    assert "starting PostgreSQL" not in capsys.readouterr().out


def test_a_missing_database_on_an_answering_server_is_created(capsys):
    with throwaway_database() as existing:
        missing = existing.replace("/throwaway_", "/throwaway_new_", 1)
        try:
            server = devservers.postgres_ready(missing, Path("unused"), Path("unused.log"))
            with devservers.postgres_connect(missing) as connection:
                name = connection.execute("SELECT current_database()").fetchone()
        finally:
            database_drop(missing)

    assert server is None
    assert name is not None and name[0].startswith("throwaway_new_")
    assert "Created the database" in capsys.readouterr().out


def test_a_database_url_nothing_can_stand_in_for_is_refused_with_what_to_do(tmp_path):
    url = f"postgres://postgres@/algotrader?host={tmp_path / 'no-server-here'}"

    with pytest.raises(devservers.DatabaseUnavailable, match="or change DATABASE_URL"):
        devservers.postgres_ready(url, tmp_path / "postgres", tmp_path / "postgres.log")

    assert not (tmp_path / "postgres").exists()


def test_the_private_postgres_of_a_session_stops_with_it_even_when_the_start_fails(project, monkeypatch, capsys):
    port = free_port()
    monkeypatch.setenv("DATABASE_URL", f"postgres://postgres@127.0.0.1:{port}/algotrader")
    monkeypatch.setenv("RUN_DIR", str(project / "var"))  # the copy has no manage.py: migrate fails

    code = devenv.run(project)

    said = capsys.readouterr().out
    assert code == 1
    assert f"Nothing answers at 127.0.0.1:{port}: starting PostgreSQL" in said and "Stopping PostgreSQL" in said
    assert (project / "var" / "postgres" / "PG_VERSION").exists() and not port_open("127.0.0.1", port)


def test_a_test_server_whose_data_cannot_start_gets_a_new_cluster(tmp_path, capsys):
    url = f"postgres://postgres@127.0.0.1:{free_port()}/algotrader"
    data, log = tmp_path / "test-postgres", tmp_path / "test-postgres.log"
    first = devservers.postgres_ready(url, data, log, durable=False)
    assert first is not None
    first.stop()
    (data / "global" / "pg_control").unlink()  # what a crash without fsync can leave behind

    second = devservers.postgres_ready(url, data, log, durable=False)
    try:
        with devservers.postgres_connect(url) as connection:
            answered = connection.execute("SELECT 1").fetchone()
    finally:
        code = second.stop() if second else None

    assert answered == (1,) and code == 0
    assert "starting it on a new cluster" in capsys.readouterr().out
