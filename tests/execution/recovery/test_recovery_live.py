"""Recovery of a running session, with every process real: an orders worker, a stop-loss
worker, beat, the market listener and the tick consumer, on the test database, trading at
the Kite simulator (its order book is the judge). Redis flushed in the middle of the
session, or every process SIGKILLed and started again: within seconds every running
strategy is back in Redis, the stops re-armed (a crossing tick exits each position once),
the pending order reconciled, X1/X4 recorded, and no order lost or duplicated."""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.db import connection
from django.utils import timezone

from algotrader import redis_keys
from algotrader.processes import ProcessGroup, celery, manage
from algotrader.queues import CeleryQueue
from algotrader.redis_client import get_redis
from brokers.adapters.base import OrderRequest, Side
from brokers.adapters.registry import adapter_for
from brokers.kite_sim import KiteSimulator, SimAccount
from brokers.models import BrokerAccount
from execution.models import Order
from execution.services.orders import order_create
from monitoring.models import EventLog
from strategies import runtime, slots
from strategies.models import Strategy
from strategies.stoploss_index import stoploss_armed
from tests.brokers import kite_sim_fixtures
from tests.execution.workers import idle
from tests.factories import BrokerAccountFactory
from tests.strategies.factories_scheduling import strategy_create
from tests.strategies.scheduling_helpers import beat_in_step
from tests.waiting import other_sessions_ended, wait_until

ROOT = Path(__file__).resolve().parents[3]
INFY = "NSE:INFY"
HELD = 2  # strategies that buy through the workers at the start of the session
RECOVERING_ELSEWHERE = "recovery already running elsewhere"  # monitoring.recovery's log line

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def kite_sim() -> Iterator[KiteSimulator]:
    """Still prices (volatility 0): only ``set_price`` moves one, so stops cross on cue."""
    sim = KiteSimulator(tick_interval=0.1, stage_delay=0.01, volatility=0.0)
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()


sim_account = kite_sim_fixtures.sim_account  # the shared fixture, on this module's still simulator


class Stack(ProcessGroup):
    """The session's processes, each in its own process group (SIGKILL takes its children);
    each launch logs to ``<name>.<launch>.log``."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        super().__init__(folder, env)
        self.starts = 0
        self.workers: list[str] = []  # the names of the launch's celery workers

    def commands(self) -> dict[str, list[str]]:
        tag = uuid.uuid4().hex[:6]
        self.workers = [f"rec-{kind}-{tag}@{os.uname().nodename}" for kind in ("orders", "sl")]
        return {
            "orders": celery(
                "worker", "-Q", "orders,scheduler", "-n", f"rec-orders-{tag}@%h", "-c", "2", "--without-mingle"
            ),
            "stoploss": celery(
                *("worker", "-Q", "stoploss", "-n", f"rec-sl-{tag}@%h", "-c", "1", "--prefetch-multiplier", "1"),
                "--without-mingle",
            ),
            "beat": celery("beat"),
            "market": manage("run_market_listener"),
            "ticks": manage("runworker", "ticks"),
        }

    def launch(self) -> None:
        self.starts += 1
        for name, command in self.commands().items():
            self.start(f"{name}.{self.starts}", command)


@pytest.fixture
def stack(
    transactional_db: None, tmp_path: Path, kite_sim: KiteSimulator, django_db_blocker: Any, settings: Any
) -> Iterator[Stack]:
    settings.KITE_API_ROOT = kite_sim.api_root  # the test leaves an order at the simulator too
    settings.KITE_WS_ROOT = kite_sim.ws_root
    parts = urlsplit(os.environ["DATABASE_URL"])
    env = {
        **os.environ,
        "DATABASE_URL": urlunsplit(parts._replace(path="/" + connection.settings_dict["NAME"])),
        "PYTHONUNBUFFERED": "1",
        "KITE_API_ROOT": kite_sim.api_root,
        "KITE_WS_ROOT": kite_sim.ws_root,
        "KITE_SIMULATED": "true",
        "MARKET_RECONCILE_SECONDS": "2",
        "RECOVERY_WATCH_SECONDS": "0.5",
        "ORDER_SETTLE_SECONDS": "1",
        "ORDER_SETTLE_AFTER_SECONDS": "1",
        "EXECUTION_LOCK_SECONDS": "10",
        "ORDER_FOLLOW_SECONDS": "10",
        "BUY_GRACE_SECONDS": "120",  # a restart on a loaded machine must not make the BUYs late
        "LOG_LEVEL": "INFO",
    }
    stack = Stack(tmp_path, env)
    yield stack
    stack.stop_all()
    with django_db_blocker.unblock():
        wait_until(other_sessions_ended)  # the processes' sessions end a moment after they do


def explained(what: str, stack: Stack, session: Session | None = None) -> Callable[[], str]:
    """A timeout's message: what was awaited, the session's state and the processes' logs."""
    return lambda: f"{what}\n{session.explain({}) if session is not None else ''}\n{stack.logs()}"


def kite_account(sim_account: SimAccount) -> BrokerAccount:
    account: BrokerAccount = BrokerAccountFactory.create(
        kite=True,
        api_key=sim_account.api_key,
        api_secret=sim_account.api_secret,
        access_token=sim_account.access_token,
        broker_user_id=sim_account.user_id,
    )
    return account


class Session:
    """Strategies of one account on INFY, each with a stop 1 % under its fill: ``held``
    buy through the workers at their slot and hold; ``waiting`` buys only in an hour."""

    def __init__(self, kite_sim: KiteSimulator, sim_account: SimAccount) -> None:
        self.kite_sim = kite_sim
        self.sim_account = sim_account
        self.account = kite_account(sim_account)
        self.price = kite_sim.price("NSE", "INFY")
        self.held: list[Strategy] = []
        self.waiting: Strategy | None = None
        self.pending: Strategy | None = None

    def _strategy(self, buy_at: Any, **fields: Any) -> Strategy:
        return strategy_create(
            buy_fire_at=buy_at,
            sell_fire_at=timezone.now() + timedelta(hours=2),
            account=self.account,
            **fields,
        )

    def begin(self, *, buy_in: float) -> None:
        """START as the lifecycle does it: runtime loaded, slots scheduled."""
        buy_at = (timezone.now() + timedelta(seconds=buy_in)).replace(microsecond=0)
        self.held = [self._strategy(buy_at) for _ in range(HELD)]
        self.waiting = self._strategy(timezone.now() + timedelta(hours=1))
        for strategy in [*self.held, self.waiting]:
            runtime.runtime_load(strategy)
            slots.schedule_strategy(strategy)

    def leave_a_pending_buy(self) -> Order:
        """A BUY whose worker died after the broker took it: the intent PENDING, the position
        BUYING, the order at the broker under the intent's tag, nobody working on it."""
        self.pending = self._strategy(
            timezone.now() - timedelta(seconds=2),
            buy_fired_at=timezone.now() - timedelta(seconds=2),
            position=Strategy.Position.BUYING,
        )
        order = order_create(strategy=self.pending, reason=Order.Reason.BUY)
        assert order.tag is not None
        adapter_for(self.account).place_order(
            OrderRequest(exchange="NSE", symbol="INFY", side=Side.BUY, quantity=1, tag=order.tag)
        )
        past = timezone.now() - timedelta(seconds=30)
        Order.objects.filter(pk=order.pk).update(updated_at=past)
        Strategy.objects.filter(pk=self.pending.pk).update(updated_at=past)
        return order

    @property
    def running(self) -> list[Strategy]:
        return [s for s in [*self.held, self.waiting, self.pending] if s is not None]

    def positions(self) -> dict[int, tuple[str, str]]:
        return {
            pk: (status, position)
            for pk, status, position in Strategy.objects.filter(pk__in=[s.pk for s in self.running]).values_list(
                "pk", "status", "position"
            )
        }

    def book(self) -> list[dict[str, Any]]:
        return self.kite_sim.orders(self.sim_account.api_key)

    def in_redis(self) -> bool:
        """Every running strategy in ``symbol:`` and ``strategy:``, every held position's stop armed."""
        redis = get_redis()
        members = {int(m) for m in redis.smembers(redis_keys.symbol_strategies(INFY))}
        running = {pk for pk, (status, _) in self.positions().items() if status == "RUNNING"}
        held = {
            pk for pk, (status, position) in self.positions().items() if (status, position) == ("RUNNING", "BOUGHT")
        }
        return (
            running <= members
            and all(redis.exists(redis_keys.strategy(pk)) for pk in running)
            and set(stoploss_armed(instrument=INFY)) >= held
        )

    def cross_the_stops(self) -> None:
        self.kite_sim.set_price("NSE", "INFY", (self.price * Decimal("0.97")).quantize(Decimal("0.05")))

    def _buyers(self) -> dict[int, tuple[str, str]]:
        positions = self.positions()
        return {s.pk: positions[s.pk] for s in [*self.held, self.pending] if s is not None}

    def settled(self) -> bool:
        """Every BUY of the session done: each buyer holds its position or has ended (a BUY
        the broker never had), no order live. A buyer still RUNNING with no position has a
        BUY to come (resent, waiting for a dead worker's lock), which must not miss the cross."""
        # A protective stop resting at the broker for a held position is not unfinished work.
        unfinished = Order.objects.filter(strategy__in=self.running, status__in=Order.LIVE).exclude(
            protective=True, status=Order.Status.PLACED, order_type__in=("SL-M", "SL")
        )
        return all(p == ("RUNNING", "BOUGHT") or p[0] == "EXITED" for p in self._buyers().values()) and not (
            unfinished.exists()
        )

    def exited(self) -> bool:
        """Every buyer has ended: a held position exited, or never bought."""
        return all(p[0] == "EXITED" for p in self._buyers().values()) and not (
            Order.objects.filter(strategy__in=self.running, status__in=Order.LIVE).exists()
        )

    def explain(self, per_strategy: dict[int, Counter[str]]) -> str:
        """What the judge saw and what the database says, for a failure's message."""
        lines = [f"broker: {per_strategy}", f"book: {self.book()}"]
        for strategy in self.running:
            orders = Order.objects.filter(strategy=strategy).order_by("id")
            lines.append(f"{strategy.pk} {self.positions()[strategy.pk]}:")
            lines += [f"  {o.tag} {o.reason} {o.status} attempts={o.attempts} {o.last_error!r}" for o in orders]
            codes = EventLog.objects.filter(strategy=strategy).order_by("id").values_list("code", "message")
            lines.append(f"  events: {list(codes)}")
        return "\n".join(lines)

    def assert_each_position_exited_once(self) -> None:
        """The judge: at the broker, per strategy, at most one BUY and, for each BUY, exactly
        one SELL; in the database no live order and every position that was held exited."""
        tags = {
            str(tag): strategy_id
            for tag, strategy_id in Order.objects.filter(strategy__in=self.running).values_list("tag", "strategy_id")
        }
        per_strategy: dict[int, Counter[str]] = {s.pk: Counter() for s in self.running}
        for order in self.book():
            assert order["tag"] in tags, order  # nothing at the broker that the database does not know
            if order["status"] == "COMPLETE":
                per_strategy[tags[order["tag"]]][order["transaction_type"]] += 1
        for strategy in [*self.held, self.pending]:
            assert strategy is not None
            assert per_strategy[strategy.pk] in (Counter(), Counter(BUY=1, SELL=1)), self.explain(per_strategy)
        assert self.waiting is not None and per_strategy[self.waiting.pk] == Counter()
        assert not Order.objects.filter(strategy__in=self.running, status__in=Order.LIVE).exists()
        positions = self.positions()
        assert positions[self.waiting.pk] == ("RUNNING", "NONE")
        for strategy in [*self.held, self.pending]:
            assert strategy is not None
            bought = per_strategy[strategy.pk]["BUY"] == 1
            assert positions[strategy.pk] == (("EXITED", "EXITED_BY_SL") if bought else ("EXITED", "NONE")), (
                strategy.pk,
                positions,
            )


def x4_events(trigger: str) -> list[EventLog]:
    return [e for e in EventLog.objects.filter(code="X4").order_by("id") if e.payload.get("trigger") == trigger]


def nothing_left_to_exit(stack: Stack, session: Session) -> bool:
    """The exits' work is over: no stop of the session's is armed (no tick can fire
    another), no task waits in a queue and no worker runs one."""
    armed = set(stoploss_armed(instrument=INFY)) & {strategy.pk for strategy in session.running}
    return not armed and idle(stack.workers, [queue.value for queue in CeleryQueue])


def start(stack: Stack, session: Session) -> None:
    """Start every process on the session's feed; back once they have recovered at start
    and beat has looked at its table."""
    stack.env["MARKET_FEED_ACCOUNT_ID"] = str(session.account.pk)
    workers_before, listener_before = len(x4_events("worker_start")), len(x4_events("listener_start"))
    stack.launch()

    def recovered() -> bool:
        # A start recovery that finds another one running leaves the work to it (its work is
        # as good): the listener's start is its own X4, or that word in its log.
        workers, listener = len(x4_events("worker_start")), len(x4_events("listener_start"))
        listener_done = listener > listener_before or RECOVERING_ELSEWHERE in stack.log(f"market.{stack.starts}")
        return listener_done and workers + listener > workers_before + listener_before

    wait_until(recovered, timeout=60, message=explained("the start recoveries", stack))
    beat_log = stack.folder / f"beat.{stack.starts}.log"
    wait_until(
        lambda: "beat: Starting" in beat_log.read_text(errors="replace"),
        timeout=60,
        message=explained("beat up", stack),
    )
    beat_in_step(lambda: beat_log.read_text(errors="replace"))


def test_a_redis_flush_in_the_middle_of_a_session_is_recovered_within_seconds(stack, kite_sim, sim_account):
    session = Session(kite_sim, sim_account)
    start(stack, session)
    session.begin(buy_in=3)
    wait_until(
        # The BUYs in the book (each held position's protective stop rests there too).
        lambda: (
            session.settled()
            and len([o for o in session.book() if o["transaction_type"] == "BUY"]) == HELD
            and session.in_redis()
        ),
        timeout=60,
        message=explained("BUYs filled", stack),
    )
    assert set(session.positions().values()) == {("RUNNING", "BOUGHT"), ("RUNNING", "NONE")}
    order = session.leave_a_pending_buy()
    flushes = len(x4_events("redis_flush"))
    flushing_at = timezone.now()

    get_redis().flushdb()
    flushed_at = time.monotonic()
    wait_until(
        lambda: len(x4_events("redis_flush")) > flushes, timeout=30, message=explained("X4 after the flush", stack)
    )
    wait_until(
        lambda: session.settled() and session.in_redis(),
        timeout=30,
        message=explained("all back in Redis", stack, session),
    )
    print(f"runtime back {time.monotonic() - flushed_at:.2f} s after the flush")  # noqa: T201

    session.cross_the_stops()
    wait_until(
        session.exited, timeout=60, message=explained("every held position exits on the crossing tick", stack, session)
    )
    wait_until(partial(nothing_left_to_exit, stack, session), message=explained("the exits' work over", stack))

    session.assert_each_position_exited_once()
    order.refresh_from_db()
    assert order.status == Order.Status.COMPLETE
    assert session.positions()[session.pending.pk] == ("EXITED", "EXITED_BY_SL")  # type: ignore[union-attr]
    # This flush's recovery: the conftest's flush before the test may have been seen too,
    # its runtime rebuilt while the session had no strategy yet.
    x1 = [
        e
        for e in EventLog.objects.filter(code="X1", created_at__gte=flushing_at).order_by("id")
        if e.payload["trigger"] == "redis_flush"
    ]
    assert x1 and x1[0].payload["strategies"] >= HELD + 1
    exits = Order.objects.filter(strategy__in=session.held, side="SELL", status="COMPLETE")
    assert {o.reason for o in exits} == {"STOPLOSS"} and exits.count() == HELD


def test_every_process_sigkilled_mid_session_and_started_again_loses_and_duplicates_nothing(
    stack, kite_sim, sim_account
):
    session = Session(kite_sim, sim_account)
    start(stack, session)
    session.begin(buy_in=3)
    # Killed the moment the first BUY is under way: its worker dies in the middle of it.
    wait_until(
        lambda: EventLog.objects.filter(code="E1", strategy__in=session.held).exists(),
        timeout=60,
        message=explained("a BUY under way", stack),
    )
    stack.kill_all()
    order = session.leave_a_pending_buy()

    start(stack, session)
    wait_until(
        lambda: session.settled() and session.in_redis(),
        timeout=60,
        message=explained("BUYs settled, stops armed", stack, session),
    )

    session.cross_the_stops()
    wait_until(
        session.exited, timeout=60, message=explained("every held position exits on the crossing tick", stack, session)
    )
    wait_until(partial(nothing_left_to_exit, stack, session), message=explained("the exits' work over", stack))

    session.assert_each_position_exited_once()
    history = Order.objects.filter(strategy__in=session.held).order_by("id").values_list("reason", "status", "attempts")
    print(f"held orders after the kill: {list(history)}; positions {session.positions()}")  # noqa: T201
    order.refresh_from_db()
    assert order.status == Order.Status.COMPLETE
    assert session.positions()[session.pending.pk] == ("EXITED", "EXITED_BY_SL")  # type: ignore[union-attr]
    assert get_redis().exists(redis_keys.recovery_sentinel())
