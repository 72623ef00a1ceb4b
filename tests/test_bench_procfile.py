"""The tick-to-order benchmark measures the stop-loss worker the Procfile runs: it takes
its pool and concurrency from the Procfile's ``stoploss`` line, and says so loudly if
that line stops naming them."""

from pathlib import Path

import pytest

from bench.tick_to_order import procfile_stoploss_worker

ROOT = Path(__file__).resolve().parent.parent


def test_the_benchmark_runs_the_procfiles_stoploss_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STOPLOSS_POOL", raising=False)
    monkeypatch.delenv("STOPLOSS_CONCURRENCY", raising=False)
    [line] = [line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("stoploss:")]

    pool, concurrency = procfile_stoploss_worker()

    assert f"--pool ${{STOPLOSS_POOL:-{pool}}}" in line
    assert f"--concurrency ${{STOPLOSS_CONCURRENCY:-{concurrency}}}" in line
    assert "--prefetch-multiplier 1" in line


def test_the_benchmark_follows_the_environment_as_honcho_would(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOPLOSS_POOL", "threads")
    monkeypatch.setenv("STOPLOSS_CONCURRENCY", "8")

    assert procfile_stoploss_worker() == ("threads", 8)
