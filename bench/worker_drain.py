"""How fast the orders workers, started exactly as the Procfile's ``worker`` line starts
them and as many as the formation runs (``PROCESS_FORMATION``), drain a burst already
queued: N tasks enqueued at once, then the wall time to the last start and the CPU
seconds the workers' processes spent per task (less bent by a loaded machine than the
wall time).

    .venv/bin/python bench/worker_drain.py --tasks 2000 --body noop
    .venv/bin/python bench/worker_drain.py --tasks 1000 --body buy   # execute_buy_task, paper broker

Extra worker options after ``--`` are appended to the Procfile's command (to compare
pools and concurrencies); ``ORDERS_CONCURRENCY`` in the environment is honoured as by
honcho, and so is ``PROCESS_FORMATION`` (``worker=1`` for one worker). Uses a PostgreSQL
and a Redis database of its own (flushed).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.database import ensure_database  # noqa: E402
from bench.stack import orders_worker_commands, process_tree_cpu_seconds  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--body", choices=["noop", "buy"], default="noop")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/algotrader_bench")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/11")
    parser.add_argument("worker_options", nargs="*", help="appended to the Procfile's worker command (after --)")
    args = parser.parse_args()
    if args.redis_url.rsplit("/", 1)[-1] in {"", "0"}:
        sys.exit("--redis-url must name a Redis database of the benchmark's own (it is flushed)")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "algotrader.settings")
    os.environ.update(
        DATABASE_URL=args.database_url,
        REDIS_URL=args.redis_url,
        LOG_LEVEL="WARNING",
        BUY_GRACE_SECONDS="3600",
    )
    ensure_database(args.database_url)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    Drain(args).run()


class Drain:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.log = ROOT / "bench" / "results" / "logs" / "worker_drain.log"  # one per worker beside it
        self.log.parent.mkdir(parents=True, exist_ok=True)

    @property
    def redis(self) -> Any:
        from algotrader.redis_client import get_redis

        return get_redis()

    def run(self) -> None:
        import subprocess

        self.redis.flushdb()
        ids = self.strategies(self.args.tasks) if self.args.body == "buy" else list(range(1, self.args.tasks + 1))
        body = "noop" if self.args.body == "noop" else "real"
        env = {**os.environ, "LOG_LEVEL": "INFO", "PYTHONUNBUFFERED": "1", "BENCH_TASK_BODY": body}
        commands = orders_worker_commands(hostname="drain-orders@%h", extra=self.args.worker_options)
        for command in commands.values():
            print("worker:", " ".join(command[2:]), f"(ORDERS_CONCURRENCY={os.environ.get('ORDERS_CONCURRENCY', '')})")
        workers = [
            subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdout=self.log.with_name(f"worker_drain-{node.split('@')[0]}.log").open("wb"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            for node, command in commands.items()
        ]
        try:
            self.wait_ready(len(workers))
            for round_ in range(self.args.rounds):
                if self.args.body == "buy" and round_:
                    self.reset_strategies(ids)
                self.measure([worker.pid for worker in workers], ids)
        finally:
            import signal

            for worker in workers:
                os.killpg(worker.pid, signal.SIGTERM)
            for worker in workers:
                worker.wait(timeout=30)

    def wait_ready(self, count: int) -> None:
        from algotrader.celery import app

        deadline = time.monotonic() + 60
        while len(app.control.ping(timeout=0.5) or []) < count:
            if time.monotonic() > deadline:
                sys.exit(f"the workers did not start; see their logs beside {self.log}")
        time.sleep(2)

    def measure(self, pids: list[int], ids: list[int]) -> None:
        from algotrader.celery import app
        from bench.hooks import STARTS_KEY, noop_task
        from execution.tasks import execute_buy_task

        task = noop_task if self.args.body == "noop" else execute_buy_task
        self.redis.delete(STARTS_KEY)
        cpu_before = [process_tree_cpu_seconds(pid) for pid in pids]
        began = time.time()
        with app.producer_or_acquire() as producer, producer.batch(max_size=500):
            for strategy_id in ids:
                task.apply_async((strategy_id,), producer=producer)
        enqueued = time.time() - began
        deadline = time.monotonic() + 60 + len(ids)
        while self.redis.llen(STARTS_KEY) < len(ids) and time.monotonic() < deadline:
            time.sleep(0.05)
        starts = sorted(float(s) for s in self.redis.lrange(STARTS_KEY, 0, -1))
        last_start = starts[-1] - began if starts else float("nan")
        if self.args.body == "buy":
            self.wait_orders_final(ids, deadline)
        done = time.time() - began
        cpu_after = [process_tree_cpu_seconds(pid) for pid in pids]
        main = sum(after[0] - before[0] for before, after in zip(cpu_before, cpu_after, strict=True))
        pool = sum(after[1] - before[1] for before, after in zip(cpu_before, cpu_after, strict=True))
        load = os.getloadavg()[0]
        print(
            f"{len(starts)}/{len(ids)} started; enqueued in {enqueued:.2f} s; last start {last_start:.2f} s"
            f" ({len(starts) / last_start:.0f} starts/s); all done {done:.2f} s;"
            f" CPU ms/task of the {len(pids)} workers: main processes {main * 1000 / len(ids):.2f}, pool processes"
            f" {pool * 1000 / len(ids):.2f}; load {load:.2f}"
        )

    def strategies(self, count: int) -> list[int]:
        from bench.schedule_burst import Bench

        bench = Bench(argparse.Namespace())
        bench.reset()
        bench.owners = bench.make_owners(count)
        ids = bench.make_strategies(count)
        self.reset_strategies(ids)
        return ids

    def reset_strategies(self, ids: list[int]) -> None:
        from django.db import connection
        from django.utils import timezone

        from strategies.models import Strategy

        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE execution_order CASCADE")
        now = timezone.now()
        Strategy.objects.filter(pk__in=ids).update(
            status=Strategy.Status.RUNNING,
            position=Strategy.Position.NONE,
            buy_fire_at=now,
            # Not fired: settlement would otherwise rescue a BUY still queued past
            # LOST_TASK_AFTER_SECONDS, running it beside its task (once, but measured twice).
            buy_fired_at=None,
            sell_fired_at=None,
        )

    def wait_orders_final(self, ids: list[int], deadline: float) -> None:
        from execution.models import Order

        while time.monotonic() < deadline:
            if not Order.objects.filter(status__in=[Order.Status.PENDING, Order.Status.PLACED]).exists() and (
                Order.objects.count() >= len(ids)
            ):
                return
            time.sleep(0.2)


if __name__ == "__main__":
    main()
