"""Market-open burst: N strategies with the same BUY second. Measures the skew from that
second to each BUY task's start through the slot scheduler (strategies.scheduling), and in
the same run (a) the floor: the same N tasks enqueued at once at that second (also as pure
no-op tasks), and (b) one one-off ClockedSchedule PeriodicTask per strategy. Then the T3
propagation time with 10,000 strategies scheduled.

    .venv/bin/python bench/schedule_burst.py --sizes 1000 5000

Starts its own beat, orders worker and scheduler worker exactly as the Procfile runs them
(pool, concurrency: ``ORDERS_CONCURRENCY`` is honoured as by honcho), on a PostgreSQL
database and a Redis database of its own (created and migrated here); writes
bench/results/schedule_burst.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))

from algotrader.processes import procfile_command  # noqa: E402
from bench.database import ensure_database  # noqa: E402
from bench.stack import orders_worker_commands, process_tree_cpu_seconds, scheduler_worker_command  # noqa: E402

# The 30 s a BUY may still go out after its second (the production BUY_GRACE_SECONDS): the bench
# runs with a longer grace so that every BUY is measured, and counts those placed past this one.
PRODUCTION_GRACE_SECONDS = 30.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/algotrader_bench")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/11")
    parser.add_argument(
        "--stub-body-sizes",
        type=int,
        nargs="*",
        default=[],
        help="sizes to measure again with execute_buy_task's own body (the order pipeline, paper broker)",
    )
    parser.add_argument(
        "--buy-grace-seconds",
        type=int,
        default=600,
        help="BUY_GRACE_SECONDS for the stack: past it a slot's BUYs expire unstarted, while the floor's and (b)'s "
        "tasks never do, so a loaded machine that needs more than the default 30 s to drain N would drop slot BUYs "
        "and leave their skew unmeasured",
    )
    parser.add_argument("--t3-strategies", type=int, default=10_000)
    parser.add_argument("--t3-samples", type=int, default=5)
    args = parser.parse_args()

    os.environ.update(
        DATABASE_URL=args.database_url,
        REDIS_URL=args.redis_url,
        DJANGO_SETTINGS_MODULE="algotrader.settings",
        LOG_LEVEL="WARNING",  # this process only; the worker and beat log as in production
        BUY_GRACE_SECONDS=str(args.buy_grace_seconds),
        # With the no-op body no BUY writes an order, so after LOST_TASK_AFTER_SECONDS
        # settlement took every fired strategy for a lost BUY and ran it for real inside the
        # orders worker, in the middle of the measurement.
        LOST_TASK_AFTER_SECONDS=str(args.buy_grace_seconds),
    )
    if args.redis_url.rsplit("/", 1)[-1] in {"", "0"}:
        sys.exit("--redis-url must name a Redis database of the benchmark's own (it is flushed)")
    ensure_database(args.database_url)

    import django

    django.setup()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))  # still stop the processes started
    Bench(args).run()


def percentile(sorted_values: list[float], total: int, pct: float) -> float | None:
    """Nearest-rank percentile over ``total`` tasks; one that never started counts as late
    as can be (None: beyond the wait)."""
    rank = max(1, math.ceil(pct / 100 * total))
    return sorted_values[rank - 1] if rank <= len(sorted_values) else None


def whole_second(ahead: float) -> datetime:
    moment = datetime.now(UTC) + timedelta(seconds=ahead)
    return moment.replace(microsecond=0) + timedelta(seconds=1)


def sleep_until(moment: datetime) -> None:
    delay = moment.timestamp() - time.time()
    if delay > 0:
        time.sleep(delay)


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.logs = RESULTS / "logs"
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.worker_name = "bench-orders@" + platform.node()
        self.scheduler_name = "bench-scheduler@" + platform.node()
        self.start_seconds = 0.01  # the lead a START gets before the slot's second (raised as measured)

    # --- set-up ------------------------------------------------------------------------

    def run(self) -> None:
        from django.core.management import call_command

        RESULTS.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        began = time.monotonic()
        call_command("migrate", verbosity=0, interactive=False)
        self.reset()
        self.redis.flushdb()
        self.owners = self.make_owners(max([*self.args.sizes, *self.args.stub_body_sizes, 1]))
        results: dict[str, Any] = {
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "workers": [
                " ".join(command[2:]) for command in orders_worker_commands(hostname=self.worker_name).values()
            ],
            "scheduler": " ".join(scheduler_worker_command(hostname=self.scheduler_name)[2:]),
            "buy_grace_seconds": self.args.buy_grace_seconds,
            "floor_enqueue": "batched publishes (kombu Producer.batch), as the slot fan-out's",
            "series": {},
        }
        for body, sizes in (("noop", self.args.sizes), ("e1_stub", self.args.stub_body_sizes)):
            if not sizes and not (body == "noop" and self.args.t3_strategies):
                continue
            self.start_stack(body)
            try:
                print(f"\n=== BUY task body: {BODIES[body]}")
                series: dict[str, Any] = results["series"].setdefault(body, {})
                for size in sizes:
                    series[str(size)] = figures = self.measure_size(size, with_noop_floor=body == "noop")
                    self.print_size(size, figures)
                    self.clear_strategies()
                if body == "noop" and self.args.t3_strategies:
                    results["t3"] = self.t3_propagation(self.args.t3_strategies, self.args.t3_samples)
                    self.print_t3(results["t3"])
            finally:
                self.stop_stack()
        results["run_seconds"] = round(time.monotonic() - began, 1)
        out = RESULTS / "schedule_burst.json"
        out.write_text(json.dumps(results, indent=2))
        print(f"\nwrote {out.relative_to(ROOT)} ({results['run_seconds']} s)")

    def measure_size(self, size: int, *, with_noop_floor: bool) -> dict[str, Any]:
        ids = self.make_strategies(size)
        figures: dict[str, Any] = {}
        if with_noop_floor:
            figures["floor_noop_task"] = self.floor(ids, task="noop")
        real_body = not with_noop_floor
        for name, pattern in (
            ("floor", lambda: self.floor(ids, task="buy")),
            ("slots", lambda: self.slots(ids)),
            ("per_strategy_clocked", lambda: self.per_strategy_clocked(ids)),
        ):
            if real_body:
                # Each pattern places every BUY anew: left BOUGHT by the pattern before, a
                # strategy's BUY would only find its position claimed and place nothing.
                self.positions_reset(ids)
            cpu_before = self.cpu_seconds()
            figures[name] = pattern()
            if real_body:
                self.follows_done(ids)
                figures[name].update(self.buys_placed(ids, figures[name].pop("scheduled_at")))
                figures[name]["cpu"] = self.cpu_per_buy(cpu_before, self.cpu_seconds(), size)
            else:
                figures[name].pop("scheduled_at")
        figures["slots_p99_vs_floor"] = ratio(figures["slots"]["p99"], figures["floor"]["p99"])
        figures["per_strategy_p99_vs_slots"] = ratio(figures["per_strategy_clocked"]["p99"], figures["slots"]["p99"])
        return figures

    @property
    def redis(self) -> Any:
        from algotrader.redis_client import get_redis

        return get_redis()

    def reset(self) -> None:
        from django.db import connection

        tables = [
            "strategies_strategy",
            "monitoring_eventlog",
            "brokers_brokeraccount",
            "users_user",
            "django_celery_beat_periodictask",
            "django_celery_beat_clockedschedule",
            "django_celery_beat_periodictasks",
        ]
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {', '.join(tables)} CASCADE")  # the benchmark's own database

    def make_owners(self, count: int) -> list[tuple[Any, Any]]:
        from algotrader.users.models import User
        from brokers.models import BrokerAccount

        unusable = "!"  # no usable password: nobody logs in as a benchmark user
        users = User.objects.bulk_create([User(email=f"bench{i}@example.com", password=unusable) for i in range(count)])
        accounts = BrokerAccount.objects.bulk_create(
            [
                BrokerAccount(owner=user, kind="paper", label="paper", status="active", broker_user_id=f"P{user.pk}")
                for user in users
            ]
        )
        return list(zip(users, accounts, strict=True))

    def make_strategies(self, count: int, *, buy: datetime | None = None, spread: int = 1) -> list[int]:
        """``count`` strategies, not running yet, one per user (cycling), BUY ``spread``
        distinct seconds from ``buy`` on, SELL an hour later."""
        from strategies.models import Strategy
        from tests.strategies.factories_scheduling import strategy_build

        buy = buy or whole_second(3600)
        strategies = [
            strategy_build(
                owner=owner,
                account=account,
                buy_fire_at=buy + timedelta(seconds=i % spread),
                sell_fire_at=buy + timedelta(seconds=3600 + i % spread),
                status=Strategy.Status.CREATED,
            )
            for i, (owner, account) in zip(range(count), cycle(self.owners), strict=False)
        ]
        return [s.pk for s in Strategy.objects.bulk_create(strategies, batch_size=2000)]

    def clear_strategies(self) -> None:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE strategies_strategy, monitoring_eventlog CASCADE")
        self.delete_all_periodic_tasks(keep_sweeper=True)

    def delete_all_periodic_tasks(self, *, keep_sweeper: bool) -> None:
        from django_celery_beat.models import ClockedSchedule, PeriodicTask, PeriodicTasks

        PeriodicTask.objects.filter(clocked__isnull=False).delete()
        ClockedSchedule.objects.all().delete()
        PeriodicTasks.update_changed()

    def start_stack(self, body: str) -> None:
        # JSON lines, as in production: log_times reads their times.
        env = {
            **os.environ,
            "LOG_LEVEL": "INFO",
            "LOG_FORMAT": "json",
            "PYTHONUNBUFFERED": "1",
            "BENCH_TASK_BODY": body,
        }
        orders_workers = orders_worker_commands(hostname=self.worker_name, env=env)
        commands = {
            **orders_workers,
            "scheduler": scheduler_worker_command(hostname=self.scheduler_name, env=env),
            "beat": procfile_command("beat", env),
        }
        self.series_logs = {name: self.logs / f"{body}-{name.split('@')[0]}.log" for name in commands}
        for name, command in commands.items():
            self.processes[name] = subprocess.Popen(
                command,
                cwd=ROOT,
                # Beat logs each task it sends at DEBUG: the per-strategy series times its sends.
                env={**env, "LOG_LEVEL": "DEBUG"} if name == "beat" else env,
                stdout=self.series_logs[name].open("wb"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        from algotrader.celery import app

        deadline = time.monotonic() + 60
        workers = [*orders_workers, self.scheduler_name]
        while len(app.control.ping(destination=workers, timeout=0.5) or []) < len(workers):
            if time.monotonic() > deadline:
                sys.exit(f"the workers did not start; see their logs in {self.logs}")
        while "beat: Starting" not in self.series_logs["beat"].read_text(errors="replace"):
            if time.monotonic() > deadline:
                sys.exit(f"beat did not start; see {self.series_logs['beat']}")
            time.sleep(0.1)
        time.sleep(1.5)

    def stop_stack(self) -> None:
        self.settle()
        for process in self.processes.values():
            os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.processes.clear()

    # --- measuring -----------------------------------------------------------------------

    def positions_reset(self, ids: list[int]) -> None:
        """The strategies back to RUNNING with no position, their orders (ours and the paper
        broker's) gone: the benchmark's own database."""
        from brokers.models import PaperOrder
        from execution.models import Order
        from strategies.models import Strategy

        Order.objects.filter(strategy_id__in=ids).delete()
        accounts = Strategy.objects.filter(pk__in=ids).values_list("broker_account_id", flat=True)
        PaperOrder.objects.filter(account_id__in=list(accounts)).delete()
        Strategy.objects.filter(pk__in=ids).update(
            status=Strategy.Status.RUNNING,
            position=Strategy.Position.NONE,
            exit_reason="",
            entry_price=None,
            stop_trigger_price=None,
            target_price=None,
            trail_high_price=None,
            ended_at=None,
        )

    def follows_done(self, ids: list[int], timeout: float = 300) -> None:
        """Until no BUY of ``ids`` is live (their follows, re-sent with countdowns, are not in
        the queue the ``settle`` drained but in the worker's timer): then the CPU is read."""
        from execution.models import Order

        deadline = time.monotonic() + timeout
        live = Order.objects.filter(strategy_id__in=ids, status__in=Order.LIVE)
        while live.exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(1)  # the last follows' position moves after their order's final status

    def buys_placed(self, ids: list[int], scheduled: float) -> dict[str, Any]:
        """When the paper broker accepted each BUY, from the BUY second: the rate placed (all
        of them over the span from the first to the last), the p50/p99 acceptance, those
        never placed or placed past the production grace, and BUYs refused as late."""
        from brokers.models import PaperOrder
        from execution.models import Order
        from strategies.models import Strategy

        accounts = list(Strategy.objects.filter(pk__in=ids).values_list("broker_account_id", flat=True))
        placed = sorted(
            at.timestamp() - scheduled
            for at in PaperOrder.objects.filter(account_id__in=accounts, side="BUY").values_list("placed_at", flat=True)
        )
        span = placed[-1] - placed[0] if len(placed) > 1 else 0.0
        late = Order.objects.filter(strategy_id__in=ids, last_error__icontains="past its valid time").count()
        return {
            "buys_placed": len(placed),
            "buys_per_second": round(len(placed) / span, 1) if span > 0 else None,
            "accepted_p50": rounded(percentile(placed, len(ids), 50)),
            "accepted_p99": rounded(percentile(placed, len(ids), 99)),
            "accepted_max": rounded(placed[-1]) if placed else None,
            "past_production_grace": sum(1 for at in placed if at > PRODUCTION_GRACE_SECONDS)
            + (len(ids) - len(placed)),
            "skipped_late": late,
            "fills": Order.objects.filter(strategy_id__in=ids, side="BUY", status="COMPLETE").count(),
        }

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds (user + system, with the pool's children) of each process started."""
        return {name: sum(process_tree_cpu_seconds(process.pid)) for name, process in self.processes.items()}

    def cpu_per_buy(self, before: dict[str, float], after: dict[str, float], count: int) -> dict[str, float]:
        """Milliseconds of CPU a BUY, per process and summed over ours (PostgreSQL's and Redis's not counted)."""
        per = {name.split("@")[0]: round((after[name] - before.get(name, 0.0)) * 1000 / count, 2) for name in after}
        per["total"] = round(sum(per.values()), 2)
        return per

    def collect(self, total: int, scheduled: datetime, timeout: float) -> dict[str, Any]:
        """Skews (seconds) from ``scheduled`` to the start of each of ``total`` tasks."""
        from bench.hooks import STARTS_KEY

        deadline = scheduled.timestamp() + timeout
        while self.redis.llen(STARTS_KEY) < total and time.time() < deadline:
            time.sleep(0.1)
        skews = sorted(float(start) - scheduled.timestamp() for start in self.redis.lrange(STARTS_KEY, 0, -1))
        self.settle()
        figures = {
            "tasks": total,
            "started": len(skews),
            "p50": rounded(percentile(skews, total, 50)),
            "p99": rounded(percentile(skews, total, 99)),
            "max": rounded(skews[-1]) if len(skews) == total else None,
            "first": rounded(skews[0]) if skews else None,
            "scheduled_at": scheduled.timestamp(),
        }
        if len(skews) < total:
            figures["unfinished_after_seconds"] = timeout
        return figures

    def settle(self) -> None:
        """Let the queue drain, then forget the starts: the next pattern begins clean."""
        from bench.hooks import STARTS_KEY

        deadline = time.monotonic() + 120
        while (self.redis.llen("orders") or self.redis.llen("scheduler")) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        self.redis.delete(STARTS_KEY)

    def floor(self, ids: list[int], *, task: str) -> dict[str, Any]:
        """(a) The same N tasks, enqueued at once at the second, over one producer and in
        pipelined publish batches of the same size as the slot fan-out's (so the floor
        publishes at least as fast as the scheduler does)."""
        from algotrader.celery import app
        from bench.hooks import noop_task
        from execution.tasks import execute_buy_task
        from strategies.scheduling import FIRE_BATCH, PUBLISH_BATCH

        measured = noop_task if task == "noop" else execute_buy_task
        scheduled = whole_second(1.5)
        sleep_until(scheduled)
        with app.producer_or_acquire() as producer:
            for start in range(0, len(ids), FIRE_BATCH):
                with producer.batch(max_size=PUBLISH_BATCH):
                    for strategy_id in ids[start : start + FIRE_BATCH]:
                        measured.apply_async((strategy_id,), producer=producer)
        return self.collect(len(ids), scheduled, timeout=60 + len(ids) / 50)

    def slots(self, ids: list[int]) -> dict[str, Any]:
        """The slot scheduler: N strategies START (schedule_strategy each), one slot fires."""
        from strategies import slots as beat_slots
        from strategies.models import Strategy

        for _attempt in range(3):
            # START costs more the busier the machine: the lead follows the slowest seen.
            scheduled = whole_second(4 + len(ids) * self.start_seconds)
            Strategy.objects.filter(pk__in=ids).update(
                status=Strategy.Status.RUNNING,
                buy_fire_at=scheduled,
                sell_fire_at=scheduled + timedelta(hours=1),
                buy_fired_at=None,
                sell_fired_at=None,
            )
            began = time.perf_counter()
            for strategy in list(Strategy.objects.filter(pk__in=ids)):
                beat_slots.schedule_strategy(strategy)
            per_call_ms = (time.perf_counter() - began) * 1000 / len(ids)
            self.start_seconds = max(self.start_seconds, 2 * per_call_ms / 1000)
            if datetime.now(UTC) < scheduled:
                break
            print(f"  (the STARTs, {per_call_ms:.1f} ms each, overran their BUY second: again with a longer lead)")
            time.sleep(2)  # the slot fired into the STARTs: let its fan-out finish, then forget it
            self.settle()
            self.delete_all_periodic_tasks(keep_sweeper=True)
        else:
            sys.exit("scheduling the strategies overran their BUY second three times")
        figures = self.collect(len(ids), scheduled, timeout=60 + len(ids) / 50)
        figures["schedule_strategy_ms_per_call"] = round(per_call_ms, 2)
        figures["t1_recorded_by"] = rounded(self.last_event_skew("T1", scheduled))
        fired = self.log_times("scheduler", '"strategies fired"', since=scheduled.timestamp())
        figures["fan_out_done"] = rounded(max(fired) - scheduled.timestamp()) if fired else None
        return figures

    def last_event_skew(self, code: str, scheduled: datetime) -> float | None:
        from django.db.models import Max

        from monitoring.models import EventLog

        last = EventLog.objects.filter(code=code).aggregate(last=Max("created_at"))["last"]
        return None if last is None else (last - scheduled).total_seconds()

    def per_strategy_clocked(self, ids: list[int]) -> dict[str, Any]:
        """(b) The plain pattern: one one-off ClockedSchedule PeriodicTask per strategy."""
        from django_celery_beat.models import ClockedSchedule, PeriodicTask, PeriodicTasks

        from algotrader.queues import CeleryQueue

        scheduled = whole_second(6 + len(ids) / 1000 * 2)  # beat loads them all first
        clocks = ClockedSchedule.objects.bulk_create([ClockedSchedule(clocked_time=scheduled) for _ in ids])
        PeriodicTask.objects.bulk_create(
            [
                PeriodicTask(
                    name=f"bench buy {strategy_id}",
                    task="execution.tasks.execute_buy_task",
                    clocked=clock,
                    one_off=True,
                    args=json.dumps([strategy_id]),
                    queue=CeleryQueue.ORDERS.value,
                )
                for strategy_id, clock in zip(ids, clocks, strict=True)
            ],
            batch_size=2000,
        )
        PeriodicTasks.update_changed()
        figures = self.collect(len(ids), scheduled, timeout=90 + len(ids) / 25)
        sent = self.log_times("beat", "Sending due task bench buy", since=scheduled.timestamp() - 1)
        figures["beat_sent_all_by"] = rounded(max(sent) - scheduled.timestamp()) if len(sent) >= len(ids) else None
        self.delete_all_periodic_tasks(keep_sweeper=True)
        return figures

    def t3_propagation(self, count: int, samples: int) -> dict[str, Any]:
        """With ``count`` strategies running and scheduled (their BUYs spread over the next
        minutes, so beat holds a few hundred slots), move one strategy's BUY to 1 s ahead:
        when does beat reload, and how late does the moved BUY start?"""
        from bench.hooks import STARTS_KEY
        from strategies import slots as beat_slots
        from strategies.models import Strategy

        first_buy = whole_second(60)
        spread = 180
        ids = self.make_strategies(count, buy=first_buy, spread=spread)
        Strategy.objects.filter(pk__in=ids).update(status=Strategy.Status.RUNNING)
        # One schedule_strategy per distinct (BUY, SELL) pair makes the same slots as one per
        # strategy (the others find theirs made); the per-call cost is measured with the bursts.
        for strategy in Strategy.objects.filter(pk__in=ids[:spread]):
            beat_slots.schedule_strategy(strategy)
        slots_in_table = beat_slots._slots().filter(enabled=True).count()
        time.sleep(1)
        reloads, skews, calls = [], [], []
        for sample in range(samples):
            strategy = Strategy.objects.get(pk=ids[sample])
            moved_to = datetime.now(UTC) + timedelta(seconds=1)
            Strategy.objects.filter(pk=strategy.pk).update(buy_fire_at=moved_to)
            strategy.refresh_from_db()
            called = time.time()
            beat_slots.reschedule_strategy(strategy)
            returned = time.time()
            calls.append(returned - called)
            deadline = time.time() + 10
            while not self.redis.llen(STARTS_KEY) and time.time() < deadline:
                time.sleep(0.01)
            started = self.redis.lpop(STARTS_KEY)
            skews.append(None if started is None else float(started) - moved_to.timestamp())
            reloads.append(self.beat_reload_after(called))
        if datetime.now(UTC) >= first_buy:
            print("warning: the T3 measurement ran into the scheduled strategies' BUY seconds")
        Strategy.objects.filter(pk__in=ids).update(status=Strategy.Status.STOPPED)
        self.clear_strategies()
        return {
            "strategies_scheduled": count,
            "slots_in_beat_table": slots_in_table,
            "reschedule_call_seconds": [rounded(c) for c in calls],
            "beat_reload_after_call_seconds": [rounded(r) for r in reloads],
            "moved_buy_start_skew_seconds": [rounded(s) for s in skews],
        }

    def beat_reload_after(self, moment: float) -> float | None:
        """Seconds from ``moment`` to beat's first "Schedule changed" after it."""
        times = self.log_times("beat", "Schedule changed", since=moment)
        return times[0] - moment if times else None

    def log_times(self, process: str, text: str, *, since: float) -> list[float]:
        """When ``process`` logged a line containing ``text``, at or after ``since``."""
        found = []
        for line in self.series_logs[process].read_text(errors="replace").splitlines():
            if text not in line:
                continue
            try:
                at = datetime.fromisoformat(json.loads(line)["time"]).timestamp()
            except (ValueError, KeyError):
                continue
            if at >= since:
                found.append(at)
        return found

    # --- output ---------------------------------------------------------------------------

    def print_size(self, size: int, figures: dict[str, Any]) -> None:
        print(f"\nN = {size} strategies, one BUY second; skew to BUY task start (s): p50 / p99 / max")
        labels = {
            "floor_noop_task": "(a0) floor: N no-op tasks enqueued at once",
            "floor": "(a)  floor: the same N BUY tasks enqueued at once",
            "slots": "     slot scheduler (beat slot -> indexed fan-out)",
            "per_strategy_clocked": "(b)  one ClockedSchedule PeriodicTask per strategy",
        }
        for key, label in labels.items():
            if key not in figures:
                continue
            f = figures[key]
            print(f"  {label:52} {fmt(f['p50'])} / {fmt(f['p99'])} / {fmt(f['max'])}  ({f['started']}/{f['tasks']})")
        print(
            f"  slot p99 / floor p99 = {fmt(figures['slots_p99_vs_floor'])}x (target <= 1.25);"
            f" per-strategy p99 / slot p99 = {fmt(figures['per_strategy_p99_vs_slots'])}x (target >= 5 at 5000)"
        )
        for key in ("floor", "slots", "per_strategy_clocked"):
            f = figures[key]
            if "buys_placed" in f:
                print(
                    f"  {key:22} placed {f['buys_placed']}/{f['tasks']} at {fmt(f['buys_per_second'])} BUYs/s;"
                    f" accepted p50 / p99 {fmt(f['accepted_p50'])} / {fmt(f['accepted_p99'])} s;"
                    f" past {PRODUCTION_GRACE_SECONDS:g} s {f['past_production_grace']},"
                    f" skipped late {f['skipped_late']};"
                    f" CPU {f['cpu']['total']} ms a BUY {f['cpu']}"
                )
        fan_out, beat_sent = figures["slots"]["fan_out_done"], figures["per_strategy_clocked"]["beat_sent_all_by"]
        print(
            f"  slot fan-out done {fmt(fan_out)} s after the second;"
            f" beat sent the last per-strategy entry {fmt(beat_sent)} s after it"
        )

    def print_t3(self, t3: dict[str, Any]) -> None:
        print(
            f"\nT3 with {t3['strategies_scheduled']} strategies scheduled ({t3['slots_in_beat_table']} slots):"
            f"\n  reschedule_strategy call (s): {t3['reschedule_call_seconds']}"
            f"\n  beat reloaded its schedule, after the call began (s): {t3['beat_reload_after_call_seconds']}"
            f"\n  moved BUY (1 s ahead) started after its new instant (s): {t3['moved_buy_start_skew_seconds']}"
        )


BODIES = {
    "noop": "empty (BENCH_TASK_BODY=noop): the scheduling and the queue alone",
    "e1_stub": "execute_buy_task's own body (execution.services: claim, intent, paper broker)",
}


def cycle(items: list[Any]) -> Any:
    while True:
        yield from items


def rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b <= 0 else round(a / b, 2)


def fmt(value: float | None) -> str:
    return "  n/a" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    main()
