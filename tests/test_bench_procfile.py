"""The tick-to-order benchmark measures the workers the Procfile runs: its stop-loss and
orders workers are the Procfile's lines as honcho would start them, its own options only
overriding the settings those lines name."""

import argparse

import pytest

from algotrader.processes import procfile_command, procfile_instances
from bench.tick_to_order import worker_commands

NO_OVERRIDES = argparse.Namespace(stoploss_pool=None, stoploss_concurrency=None, orders_concurrency=None)


def test_the_benchmark_runs_the_procfiles_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("STOPLOSS_POOL", "STOPLOSS_CONCURRENCY", "ORDERS_CONCURRENCY", "PROCESS_FORMATION"):
        monkeypatch.delenv(name, raising=False)

    commands = worker_commands(NO_OVERRIDES, {}, pid=7)

    production = {"stoploss": procfile_command("stoploss", {})}
    for instance, command in procfile_instances("worker", {}):  # as many as the formation runs
        production[f"orders.{instance.rsplit('.', 1)[1]}"] = command
    assert sorted(commands) == sorted(production) == ["orders.1", "orders.2", "stoploss"]
    for bench_name, expected in production.items():
        command = commands[bench_name]
        node = expected.index("-n") + 1
        assert command[: len(expected)] == [*expected[:node], f"bench{bench_name}7@%h", *expected[node + 1 :]]
    stoploss = commands["stoploss"]
    assert stoploss[stoploss.index("--prefetch-multiplier") + 1] == "1"


def test_the_benchmarks_options_override_what_the_procfile_reads_from_the_environment() -> None:
    overrides = argparse.Namespace(stoploss_pool="threads", stoploss_concurrency=8, orders_concurrency=5)

    commands = worker_commands(overrides, {"STOPLOSS_CONCURRENCY": "3"}, pid=7)

    stoploss, orders = commands["stoploss"], commands["orders.1"]
    assert stoploss[stoploss.index("--pool") + 1] == "threads"
    assert stoploss[stoploss.index("--concurrency") + 1] == "8"
    assert orders[orders.index("--concurrency") + 1] == "5"
