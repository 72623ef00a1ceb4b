"""Benchmarks and tests start a process from its Procfile line, as honcho would, so that
what they measure or check is what production runs."""

import sys
from pathlib import Path

import pytest

from algotrader.processes import procfile_command


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
