"""Benchmarks and tests start a process from its Procfile line, as honcho would, so that
what they measure or check is what production runs."""

import sys
from pathlib import Path

import pytest

from algotrader.processes import honcho_concurrency, procfile_command, procfile_formation, procfile_instances


def test_the_orders_worker_line_is_run_by_this_interpreter_with_the_environment_s_concurrency():
    command = procfile_command("worker", {"ORDERS_CONCURRENCY": "5"})

    assert command[:3] == [sys.executable, "-m", "celery"]
    assert command[command.index("--pool") + 1] == "threads"
    assert command[command.index("--concurrency") + 1] == "5"


def test_an_unset_variable_takes_the_procfile_s_default(tmp_path: Path):
    procfile = tmp_path / "Procfile"
    procfile.write_text("web: uvicorn app --port ${WEB_PORT:-8000}\nbeat: python manage.py beat\n")

    assert procfile_command("web", {}, procfile=procfile) == [
        str(Path(sys.executable).parent / "uvicorn"),
        "app",
        "--port",
        "8000",
    ]
    assert procfile_command("web", {"WEB_PORT": "9001"}, procfile=procfile)[-1] == "9001"
    assert procfile_command("beat", {}, procfile=procfile) == [sys.executable, "manage.py", "beat"]


def test_a_required_variable_left_unset_is_refused(tmp_path: Path):
    procfile = tmp_path / "Procfile"
    procfile.write_text('flower: celery flower --basic-auth="${FLOWER_BASIC_AUTH:?set it}"\n')

    with pytest.raises(KeyError, match="FLOWER_BASIC_AUTH"):
        procfile_command("flower", {}, procfile=procfile)
    assert procfile_command("flower", {"FLOWER_BASIC_AUTH": "a:b"}, procfile=procfile)[-1] == "--basic-auth=a:b"


def test_an_unknown_process_is_refused():
    with pytest.raises(KeyError):
        procfile_command("nonesuch", {})


def test_the_formation_runs_two_orders_workers_under_names_of_their_own_and_one_of_each_other_process():
    instances = procfile_instances("worker", {})

    assert [name for name, _ in instances] == ["worker.1", "worker.2"]
    nodes = [command[command.index("-n") + 1] for _, command in instances]
    assert nodes == ["orders-worker.1@%h", "orders-worker.2@%h"]  # two nodes, not one name twice
    assert [name for name, _ in procfile_instances("stoploss", {})] == ["stoploss.1"]
    assert honcho_concurrency({}) == ["-c", "worker=2"]


def test_the_formation_is_a_setting_in_honcho_s_syntax():
    env = {"PROCESS_FORMATION": "worker=3, stoploss=2"}

    assert procfile_formation(env) == {"worker": 3, "stoploss": 2}
    assert len(procfile_instances("worker", env)) == 3
    assert honcho_concurrency(env) == ["-c", "worker=3,stoploss=2"]


@pytest.mark.parametrize("formation", ["worker", "worker=0", "worker=two", "=2", "worker=2,,"])
def test_a_formation_that_is_not_process_equals_count_is_refused(formation: str):
    with pytest.raises(ValueError, match="PROCESS_FORMATION"):
        procfile_formation({"PROCESS_FORMATION": formation})
