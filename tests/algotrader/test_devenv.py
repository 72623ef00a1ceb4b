"""`make run`'s start-up (algotrader.devenv): Redis is taken as it is when it answers,
started for the session when it does not and redis-server is installed (and stopped with
the session), and missing, it says what to install and starts nothing else."""

import shutil
from pathlib import Path

import pytest
import redis

from algotrader import devenv, devservers
from algotrader.processes import ProcessGroup, free_port

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
