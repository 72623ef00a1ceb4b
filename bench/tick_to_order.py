"""Tick to stop-loss order, end to end, on a stack started here:

    .venv/bin/python bench/tick_to_order.py

The Kite simulator (in this process, still prices, a frame of every subscribed
instrument each ``--tick-interval``), ``run_market_listener`` on its real ticker,
``runworker ticks``, a stop-loss worker (``celery -Q stoploss``, with the Procfile's pool
and concurrency unless told otherwise) and the orders workers (``celery -Q orders``, as
many as the formation runs, which follow the stop-losses' fills). 10,000 running
strategies with armed stops over every equity the simulator lists (500 of them), owned
by ``--accounts`` users with a Kite account each (Kite limits each account to 10 orders
a second, and so does the engine). Measures

(a) ticks per second the tick consumer sustains: a backlog of full batches put on the
    ``ticks`` channel with the listener stopped, timed until the consumer applied all;
(b) tick-to-order latency: from a frame's arrival at the listener (``frame_received_at``
    in M2) to the stop-loss order's arrival at the simulator's order endpoint, over rounds
    of ``set_price`` moves that cross 1-3 stops on a few instruments each, after warm-up
    rounds (reported apart) that open the processes' connections;
(c) the baseline: one bare HTTP POST of an order to the simulator plus one Redis round
    trip, from this process; and the ratio (b)/(c).

A PostgreSQL database and Redis database (9) of its own, created, migrated and flushed
here; writes bench/results/tick_to_order.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))

from algotrader.processes import procfile_command, procfile_instances  # noqa: E402
from bench.database import ensure_database  # noqa: E402
from bench.stack import process_tree_cpu_seconds  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/algotrader_bench_market")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/9")
    parser.add_argument("--strategies", type=int, default=10_000)
    parser.add_argument("--tick-interval", type=float, default=0.05, help="seconds between simulator frames")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument(
        "--warmup-rounds", type=int, default=2, help="rounds run first and reported apart (cold processes)"
    )
    parser.add_argument("--crossings-per-round", type=int, default=5, help="instruments moved through stops a round")
    parser.add_argument("--backlog-batches", type=int, default=300, help="full batches queued for (a)")
    parser.add_argument("--baseline-samples", type=int, default=300)
    parser.add_argument(
        "--stoploss-concurrency",
        type=int,
        help="the stop-loss worker's concurrency (default: the Procfile's, with STOPLOSS_CONCURRENCY if set)",
    )
    parser.add_argument(
        "--stoploss-pool",
        choices=["threads", "prefork"],
        help="the stop-loss worker's pool (default: the Procfile's, with STOPLOSS_POOL if set): "
        "prefork runs tasks on every core, threads share one GIL",
    )
    parser.add_argument(
        "--orders-concurrency",
        type=int,
        help="the orders worker's threads, which follow the fills (default: the Procfile's, with ORDERS_CONCURRENCY)",
    )
    parser.add_argument(
        "--accounts",
        type=int,
        default=100,
        help="users (each with a Kite account and its own order rate) owning the strategies in turn",
    )
    parser.add_argument(
        "--stoploss-task",
        choices=["bench", "execution"],
        default="execution",
        help="execution (the default, what the issue measures): the engine's own task; "
        "bench: a minimal bench-only task (bench/stoploss_bench.py), the tick path alone",
    )
    args = parser.parse_args()
    # The simulator stands in for a broker with servers of its own, yet shares this
    # interpreter: at CPython's default 5 ms switch interval, its thread building a frame
    # of 500 instruments held the GIL while the thread answering an order POST waited,
    # and the baseline's p99 read 17 to 60 ms instead of 6 to 11.
    sys.setswitchinterval(0.0005)

    if args.redis_url.rsplit("/", 1)[-1] in {"", "0"}:
        sys.exit("--redis-url must name a Redis database of the benchmark's own (it is flushed)")
    os.environ.update(
        DATABASE_URL=args.database_url,
        REDIS_URL=args.redis_url,
        DJANGO_SETTINGS_MODULE="algotrader.settings",
        LOG_LEVEL="WARNING",
        KITE_SIMULATED="true",
    )
    ensure_database(args.database_url)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, check=True, env=os.environ.copy()
    )

    import django

    django.setup()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))  # still stop the processes started
    Bench(args).run()


def worker_commands(args: argparse.Namespace, env: Mapping[str, str], *, pid: int) -> dict[str, list[str]]:
    """The Procfile's ``stoploss`` line and its ``worker`` line once for each orders worker
    of the formation (``orders.1``, ``orders.2``...), as honcho would start them in ``env``
    (the benchmark's overrides given as the settings they stand for), under node names of
    the benchmark's own: it measures what the Procfile runs."""
    overrides = {
        "STOPLOSS_POOL": args.stoploss_pool,
        "STOPLOSS_CONCURRENCY": args.stoploss_concurrency,
        "ORDERS_CONCURRENCY": args.orders_concurrency,
    }
    env = {**env, **{name: str(value) for name, value in overrides.items() if value is not None}}
    bench_options = ["--without-mingle", "--without-gossip", "--loglevel", "WARNING"]
    commands = {"stoploss": procfile_command("stoploss", env)}
    for instance, command in procfile_instances("worker", env):
        commands[f"orders.{instance.rsplit('.', 1)[1]}"] = command
    for name, command in commands.items():
        command[command.index("-n") + 1] = f"bench{name}{pid}@%h"
        command += bench_options
    commands["stoploss"] += ["--include", "bench.stoploss_bench"]
    return commands


def procfile_names() -> set[str]:
    """The processes the Procfile runs (the order-update stream only where it exists)."""
    lines = (ROOT / "Procfile").read_text().splitlines()
    return {line.partition(":")[0].strip() for line in lines if ":" in line}


def described(command: Sequence[str]) -> str:
    """``celery <pool> pool x<concurrency>, prefetch <n>`` of a worker command (the
    prefetch multiplier is the settings' unless the command names one)."""
    from django.conf import settings

    def option(name: str, default: object) -> str:
        return command[command.index(name) + 1] if name in command else str(default)

    return (
        f"celery {option('--pool', 'prefork')} pool x{option('--concurrency', '?')}, "
        f"prefetch {option('--prefetch-multiplier', settings.CELERY_WORKER_PREFETCH_MULTIPLIER)}"
    )


def summary(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
    ordered = sorted(values)

    def rank(pct: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, math.ceil(pct / 100 * len(ordered)) - 1))] * 1000

    return {
        "n": len(ordered),
        "p50_ms": round(rank(50), 2),
        "p99_ms": round(rank(99), 2),
        "max_ms": round(ordered[-1] * 1000, 2),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 2),
    }


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.logs = RESULTS / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.arrivals: list[tuple[float, str, str]] = []  # (arrival wall time, symbol, tag)
        # GET /orders/{id} (an order's history) answered by the simulator: how fills are learnt
        # by polling, each one a request against the account's budget.
        self.history_requests = 0

    # -- the stack ---------------------------------------------------------------------

    def run(self) -> None:
        from algotrader.redis_client import get_redis
        from brokers.kite_sim import KiteSimulator

        get_redis().flushdb()
        sim = KiteSimulator(tick_interval=self.args.tick_interval, stage_delay=0.01, volatility=0.0).start()
        place = sim.book.place

        def recording_place(account: Any, variety: str, params: dict[str, str], **kwargs: Any) -> Any:
            self.arrivals.append((time.time(), params.get("tradingsymbol", ""), params.get("tag") or ""))
            return place(account, variety, params, **kwargs)

        sim.book.place = recording_place  # type: ignore[method-assign]
        history = sim.book.history

        def counting_history(account: Any, order_id: str) -> Any:
            self.history_requests += 1
            return history(account, order_id)

        sim.book.history = counting_history  # type: ignore[method-assign]
        try:
            self.sim = sim
            self.setup_strategies()
            self.start_stack()
            self.warm_up()
            cpu_before = self.cpu_seconds()
            latency = self.measure_latency()
            cpu_after = self.cpu_seconds()
            orders = max(1, latency["orders_at_simulator"])
            latency["cpu_ms_per_order"] = {
                name: round((cpu_after[name] - cpu_before[name]) * 1000 / orders, 2) for name in cpu_after
            }
            baseline = self.measure_baseline()
            throughput = self.measure_throughput()
        finally:
            self.stop_stack()
            sim.stop()
        self.report(latency, baseline, throughput)

    def setup_strategies(self) -> None:
        from django.core.management import call_command

        from algotrader import redis_keys
        from algotrader.redis_client import get_redis
        from algotrader.users.models import User
        from brokers.instruments import load_instruments
        from strategies.models import Strategy
        from strategies.runtime import runtime_fields
        from tests.factories import BrokerAccountFactory

        started = time.monotonic()
        call_command("flush", interactive=False, verbosity=0)  # the benchmark's own database
        self.orders_account = self.sim.create_account()  # the minimal task's (--stoploss-task bench)
        # The baseline's own: an order POST costs more as the account's book grows (the
        # simulator's margin check reads it), and the minimal task fills the one above.
        self.baseline_account = self.sim.create_account()
        # The strategies belong to --accounts users, each with a Kite account of their own
        # (and so an order rate of its own, as at Kite), dealt out in turn; the first
        # account's session also feeds the ticks.
        accounts = []
        for n in range(self.args.accounts):
            sim_account = self.sim.create_account()
            accounts.append(
                BrokerAccountFactory.create(
                    owner=User.objects.create_user(email=f"bench{n}@example.com", password=None),
                    kite=True,
                    api_key=sim_account.api_key,
                    api_secret=sim_account.api_secret,
                    access_token=sim_account.access_token,
                    broker_user_id=sim_account.user_id,
                )
            )
        self.account_id = accounts[0].pk
        instruments = [i for i in load_instruments() if i.segment != "INDICES" and i.lot_size > 0]
        per_instrument = math.ceil(self.args.strategies / len(instruments))
        now = datetime.now(UTC)
        # Stops 0.2% apart below the reference price, on each instrument's tick grid.
        self.stops: dict[str, list[Decimal]] = {}
        self.tick_size: dict[str, Decimal] = {}
        rows = []
        for n in range(self.args.strategies):
            instrument = instruments[n % len(instruments)]
            level = n // len(instruments)
            tick = instrument.tick_size or Decimal("0.05")
            raw = instrument.reference_price * (Decimal(1) - Decimal("0.002") * (level + 1))
            stop = (raw / tick).to_integral_value(rounding=ROUND_FLOOR) * tick
            key = f"{instrument.exchange}:{instrument.symbol}"
            self.stops.setdefault(key, []).append(stop)
            self.tick_size[key] = tick
            account = accounts[n % len(accounts)]
            rows.append(
                Strategy(
                    owner_id=account.owner_id,
                    broker_account=account,
                    venue="SIM",
                    exchange=instrument.exchange,
                    symbol=instrument.symbol,
                    quantity=instrument.lot_size,
                    trade_date=now.date(),
                    buy_at=datetime.strptime("09:15", "%H:%M").time(),
                    sell_at=datetime.strptime("15:15", "%H:%M").time(),
                    stop_loss_price=stop,
                    status=Strategy.Status.RUNNING,
                    position=Strategy.Position.BOUGHT,
                    buy_fire_at=now - timedelta(hours=1),
                    sell_fire_at=now + timedelta(hours=6),
                    entry_price=instrument.reference_price,
                    stop_trigger_price=stop,
                )
            )
        created = Strategy.objects.bulk_create(rows, batch_size=2000)
        redis = get_redis()
        pipe = redis.pipeline(transaction=False)
        for strategy in created:
            instrument_key = f"{strategy.exchange}:{strategy.symbol}"
            pipe.hset(redis_keys.strategy(strategy.pk), mapping=runtime_fields(strategy))
            pipe.sadd(redis_keys.symbol_strategies(instrument_key), strategy.pk)
            pipe.zadd(
                redis_keys.stop_losses(instrument_key), {str(strategy.pk): float(strategy.stop_trigger_price or 0)}
            )
            if len(pipe) >= 3000:
                pipe.execute()
        pipe.execute()
        # Remaining stops per instrument, highest first: what the next move must cross.
        for key in self.stops:
            self.stops[key].sort(reverse=True)
        self.instruments = sorted(self.stops)
        self.per_instrument = per_instrument
        print(
            f"setup: {len(created)} running strategies with armed stops over {len(self.instruments)} instruments "
            f"in {time.monotonic() - started:.1f} s"
        )

    def start_stack(self) -> None:
        from algotrader import redis_keys
        from algotrader.celery import app
        from algotrader.redis_client import get_redis

        with app.connection_for_write() as connection:
            for queue in app.conf.task_queues:
                queue(connection.default_channel).declare()
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "KITE_API_ROOT": self.sim.api_root,
            "KITE_WS_ROOT": self.sim.ws_root,
            "MARKET_FEED_ACCOUNT_ID": str(self.account_id),
            "BENCH_KITE_API_KEY": self.orders_account.api_key,
            "BENCH_KITE_ACCESS_TOKEN": self.orders_account.access_token,
            "BENCH_STOPLOSS": self.args.stoploss_task,
        }
        # The orders worker follows the stop-losses' fills (follow_order_task), on the same
        # cores as the path measured.
        workers = worker_commands(self.args, env, pid=os.getpid())
        self.stoploss_command, self.orders_command = workers["stoploss"], workers["orders.1"]
        self.orders_workers = len(workers) - 1
        commands = {
            **workers,
            "ticks": [sys.executable, "manage.py", "runworker", "ticks"],
            "market": [sys.executable, "manage.py", "run_market_listener"],
        }
        if "orderupdates" in procfile_names():
            # Order updates from each account's ticker: the follows learn the fills from them.
            commands["orderupdates"] = procfile_command("orderupdates", env)
        for name, command in commands.items():
            self.processes[name] = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdout=(self.logs / f"tick_to_order_{name}.log").open("wb"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        redis = get_redis()
        deadline = time.monotonic() + 60
        while True:
            pipe = redis.pipeline(transaction=False)
            for key in self.instruments:
                pipe.exists(redis_keys.instrument_price(key))
            if all(pipe.execute()):
                break
            self.check_alive()
            if time.monotonic() > deadline:
                sys.exit("the listener never delivered a price of every instrument; see bench/results/logs")
            time.sleep(0.2)
        worker = f"benchstoploss{os.getpid()}@{os.uname().nodename}"
        while not app.control.ping(destination=[worker], timeout=0.5):
            self.check_alive()
            if time.monotonic() > deadline:
                sys.exit("the stop-loss worker never answered; see bench/results/logs")
        self.wait_recovered(deadline + 60)
        time.sleep(1.0)

    def wait_recovered(self, deadline: float) -> None:
        """Each worker's and the listener's start runs a recovery (X1, X4) that rebuilds the
        runtime of all the strategies: seconds of CPU on 2 cores, which the first rounds
        met. The latency measured is a running stack's, so it starts once they are done
        (recorded, and the recovery lock free for a second and a half)."""
        from execution.recovery.system import recovery_running
        from monitoring.models import EventLog

        started = time.monotonic()
        quiet = 0
        while quiet < 3:
            self.check_alive()
            if time.monotonic() > deadline:
                sys.exit("the start-up recoveries never finished; see bench/results/logs")
            done = EventLog.objects.filter(code="X4").exists() and not recovery_running()
            quiet = quiet + 1 if done else 0
            time.sleep(0.5)
        print(f"start-up recoveries done; waited {time.monotonic() - started:.1f} s")

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time (user + system) used so far by each started process with its pool's
        children: what load does not bend."""
        return {name: sum(process_tree_cpu_seconds(process.pid)) for name, process in self.processes.items()}

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                sys.exit(f"{name} exited with {process.returncode}; see bench/results/logs/tick_to_order_{name}.log")

    def stop_stack(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    # -- (b) tick to order ---------------------------------------------------------------

    def warm_up(self) -> None:
        """``--warmup-rounds`` rounds as measured ones, reported apart: a process's first
        stop-losses and follows open its database connections (a PostgreSQL backend each,
        one per orders-worker thread), Redis and broker sessions, which a stack that has
        been running all day has done long before."""
        self.rng = random.Random(7)
        self.arrivals.clear()
        self.run_rounds(self.args.warmup_rounds)
        time.sleep(0.5)
        self.warmup = summary(self.frame_latencies(self.m2_payloads()))
        self.arrivals.clear()

    def run_rounds(self, count: int) -> tuple[int, int]:
        """``count`` rounds of moves through stops; (stops crossed, orders missing after 5 s)."""
        expected_total = missing = 0
        for _ in range(count):
            expected = 0
            moved = self.rng.sample(
                [i for i in self.instruments if len(self.stops[i]) > 3], self.args.crossings_per_round
            )
            start_index = len(self.arrivals)
            for instrument in moved:
                stops = self.stops[instrument]
                price = stops[self.rng.randint(0, 2)]  # cross 1-3 stops, on the tick grid
                expected += len([s for s in stops if s >= price])
                self.stops[instrument] = [s for s in stops if s < price]
                exchange, symbol = instrument.split(":")
                self.sim.set_price(exchange, symbol, price)
            expected_total += expected
            deadline = time.monotonic() + 5
            while len(self.arrivals) - start_index < expected and time.monotonic() < deadline:
                time.sleep(0.002)
            missing += max(0, expected - (len(self.arrivals) - start_index))
            time.sleep(0.1)
        return expected_total, missing

    @staticmethod
    def m2_payloads() -> list[dict[str, Any]]:
        from monitoring.models import EventLog

        return list(EventLog.objects.filter(code="M2").values_list("payload", flat=True))

    def frame_latencies(self, m2_payloads: list[dict[str, Any]]) -> list[float]:
        """Frame to order of each arrival so far. Each round moves an instrument through its
        stops once, in one frame: an order on an instrument belongs to the last triggering
        frame of that instrument before it arrived (whatever tag the stop-loss task gives it)."""
        frames: dict[str, list[float]] = {}
        for payload in m2_payloads:
            frames.setdefault(payload["instrument"].split(":")[1], []).append(float(payload["frame_received_at"]))
        latencies = []
        for arrived, symbol, tag in self.arrivals:
            before = [frame for frame in frames.get(symbol, []) if frame <= arrived]
            if before and not tag.startswith("BASE"):
                latencies.append(arrived - max(before))
        return latencies

    def measure_latency(self) -> dict[str, Any]:
        from algotrader.redis_client import get_redis
        from execution.models import Order

        history_before = self.history_requests
        expected_total, missing = self.run_rounds(self.args.rounds)
        time.sleep(0.5)
        history_requests = self.history_requests - history_before
        payloads = self.m2_payloads()
        latencies = self.frame_latencies(payloads)
        m2 = {int(payload["strategy_id"]): payload for payload in payloads}
        received_at = {strategy_id: float(payload["frame_received_at"]) for strategy_id, payload in m2.items()}
        started = {int(k): float(v) for k, v in get_redis().hgetall("bench:stoploss_started").items()}
        # The bench-only task tags its order SL{strategy id}; the engine's tags are its Order's.
        tags = [tag for _, _, tag in self.arrivals]
        strategy_of = dict(Order.objects.filter(tag__in=tags).values_list("tag", "strategy_id"))
        strategy_of.update({tag: int(tag[2:]) for _, _, tag in self.arrivals if tag[:2] == "SL" and tag[2:].isdigit()})
        to_enqueued, to_task_start, task_to_order = [], [], []
        for arrived, _, tag in self.arrivals:
            if strategy_of.get(tag) in received_at:
                strategy_id = strategy_of[tag]
                to_enqueued.append(m2[strategy_id]["enqueued_at"] - received_at[strategy_id])
                if strategy_id in started:
                    to_task_start.append(started[strategy_id] - m2[strategy_id]["enqueued_at"])
                    task_to_order.append(arrived - started[strategy_id])
        orders_by_tag: dict[str, int] = {}
        for _, _, tag in self.arrivals:
            orders_by_tag[tag] = orders_by_tag.get(tag, 0) + 1
        return {
            "crossing_moves": self.args.rounds * self.args.crossings_per_round,
            "stops_crossed": expected_total,
            "m2_recorded": len(received_at),
            "orders_at_simulator": len(self.arrivals),
            "duplicate_orders": sum(count - 1 for count in orders_by_tag.values() if count > 1),
            "orders_missing_after_5s": missing,
            # Each exit's fill learnt by polling its history (the rest from the order-update stream).
            "order_history_requests": history_requests,
            "history_requests_per_exit": round(history_requests / len(self.arrivals), 2) if self.arrivals else None,
            "warmup_rounds": self.args.warmup_rounds,
            "warmup_frame_to_order": self.warmup,
            "frame_to_order": summary(latencies),
            # In arrival order: where in the run the slow ones were (a cold start, one round, all).
            "frame_to_order_ms_by_arrival": [round(latency * 1000, 1) for latency in latencies],
            "parts": {
                "frame_to_task_enqueued": summary(to_enqueued),
                "enqueued_to_task_start": summary(to_task_start),
                "task_start_to_order_at_broker": summary(task_to_order),
            },
        }

    # -- (c) the baseline ----------------------------------------------------------------

    def measure_baseline(self) -> dict[str, Any]:
        """From a process of its own, as the stop-loss worker is, while ticks still flow."""
        output = subprocess.run(
            [sys.executable, __file__, "--baseline-client"],
            env={
                **os.environ,
                "KITE_API_ROOT": self.sim.api_root,
                "BENCH_KITE_API_KEY": self.baseline_account.api_key,
                "BENCH_KITE_ACCESS_TOKEN": self.baseline_account.access_token,
                "BENCH_SAMPLES": str(self.args.baseline_samples),
            },
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        )
        samples = json.loads(output.stdout.strip().splitlines()[-1])
        return {"http_post_plus_redis_round_trip": summary(samples)}

    # -- (a) consumer throughput ---------------------------------------------------------

    def measure_throughput(self) -> dict[str, Any]:
        from channels.layers import get_channel_layer

        from algotrader import redis_keys
        from algotrader.redis_client import get_redis
        from market.ticks import BATCH_TYPE, TICKS_CHANNEL

        market = self.processes["market"]
        os.killpg(market.pid, signal.SIGTERM)
        market.wait(timeout=20)
        redis = get_redis()
        time.sleep(0.5)
        prices = {}
        for instrument in self.instruments:
            prices[instrument] = float(redis.hget(redis_keys.instrument_price(instrument), "price") or 1.0)
        base_ts = time.time() + 10_000  # newer than any stored tick: every tick is applied
        batches = [
            {
                "type": BATCH_TYPE,
                "ticks": [[i, prices[i], base_ts + n] for i in self.instruments],
                "received_at": time.time(),
            }
            for n in range(self.args.backlog_batches)
        ]
        total = len(batches) * len(self.instruments)

        def applied() -> int:
            return sum(int(v) for v in redis.hvals(redis_keys.tick_counts()))

        before = applied()
        layer = get_channel_layer()
        assert layer is not None

        async def fill() -> None:
            for batch in batches:
                await layer.send(TICKS_CHANNEL, batch)

        started = time.perf_counter()
        asyncio.run(fill())
        filled = time.perf_counter() - started
        deadline = time.monotonic() + 60
        while applied() - before < total and time.monotonic() < deadline:
            time.sleep(0.005)
        elapsed = time.perf_counter() - started
        done = applied() - before
        return {
            "batches": len(batches),
            "ticks_per_batch": len(self.instruments),
            "ticks": total,
            "ticks_applied": done,
            "seconds": round(elapsed, 3),
            "backlog_filled_in_seconds": round(filled, 3),
            "ticks_per_second": round(done / elapsed),
        }

    # -- report --------------------------------------------------------------------------

    def report(self, latency: dict[str, Any], baseline: dict[str, Any], throughput: dict[str, Any]) -> None:
        import execution.tasks

        frame, warmup = latency["frame_to_order"], latency["warmup_frame_to_order"]
        base = baseline["http_post_plus_redis_round_trip"]
        ratio = {
            key: round(frame[key] / base[key], 2) if frame.get(key) and base.get(key) else None
            for key in ("p50_ms", "p99_ms")
        }
        result = {
            "measured_at": datetime.now(UTC).isoformat(),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
            "setup": {
                "strategies": self.args.strategies,
                "instruments": len(self.instruments),
                "strategies_per_instrument": self.per_instrument,
                "broker_accounts": self.args.accounts,
                "simulator_frame_interval_s": self.args.tick_interval,
                "offered_ticks_per_second": round(len(self.instruments) / self.args.tick_interval),
                "stoploss_worker": described(self.stoploss_command),
                "orders_worker": f"{self.orders_workers} x {described(self.orders_command)}",
                "stoploss_task": "execution engine (execution.tasks.execute_stoploss_task)"
                if self.args.stoploss_task == "execution" and hasattr(execution.tasks, "execute_stoploss_task")
                else "bench-only (bench/stoploss_bench.py: one Redis read, one HTTP POST)",
            },
            "a_consumer_throughput": throughput,
            "b_tick_to_order": latency,
            "c_baseline": baseline,
            "ratio_b_over_c": ratio,
            "targets": {
                "consumer_ticks_per_second_at_least": 20_000,
                "p99_ratio_at_most": 5,
                "met": {
                    "throughput": throughput["ticks_per_second"] >= 20_000,
                    "latency": ratio["p99_ms"] is not None and ratio["p99_ms"] <= 5,
                },
            },
        }
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "tick_to_order.json").write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))
        print(
            f"\n(a) consumer: {throughput['ticks_per_second']:,} ticks/s "
            f"({throughput['ticks_applied']:,} ticks in {throughput['seconds']} s)\n"
            f"(b) frame -> order at the broker: p50 {frame['p50_ms']} ms, p99 {frame['p99_ms']} ms, "
            f"max {frame['max_ms']} ms over {frame['n']} orders (before them, {latency['warmup_rounds']} warm-up"
            f" rounds: p50 {warmup['p50_ms']} ms, max {warmup['max_ms']} ms)\n"
            f"order history requests (GET /orders/{{id}}) per exit: {latency['history_requests_per_exit']} "
            f"({latency['order_history_requests']} for {latency['orders_at_simulator']} exits)\n"
            f"(c) baseline POST + Redis: p50 {base['p50_ms']} ms, p99 {base['p99_ms']} ms\n"
            f"(b)/(c): p50 x{ratio['p50_ms']}, p99 x{ratio['p99_ms']}\n"
            f"written to {RESULTS / 'tick_to_order.json'}"
        )


def baseline_client() -> None:
    """(c): one Redis round trip plus one bare order POST to the simulator, repeatedly;
    prints the samples (seconds) as one JSON line."""
    import redis
    import requests

    client = redis.Redis.from_url(os.environ["REDIS_URL"], decode_responses=True)
    session = requests.Session()
    headers = {
        "X-Kite-Version": "3",
        "Authorization": f"token {os.environ['BENCH_KITE_API_KEY']}:{os.environ['BENCH_KITE_ACCESS_TOKEN']}",
    }
    url = f"{os.environ['KITE_API_ROOT']}/orders/regular"
    order = {"exchange": "NSE", "tradingsymbol": "INFY", "transaction_type": "SELL", "quantity": "1"}
    order.update(order_type="MARKET", product="MIS")
    client.ping()
    samples = []
    for n in range(int(os.environ["BENCH_SAMPLES"])):
        started = time.perf_counter()
        client.hgetall("strategy:1")
        response = session.post(url, data={**order, "tag": f"BASE{n}"}, headers=headers, timeout=5)
        samples.append(time.perf_counter() - started)
        response.raise_for_status()
        time.sleep(0.005)
    print(json.dumps(samples))


if __name__ == "__main__":
    if sys.argv[1:] == ["--baseline-client"]:
        baseline_client()
    else:
        main()
