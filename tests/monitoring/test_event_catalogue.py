"""Every code of the catalogue (EVENT-MAP U1..L4) is emitted by a real path: one session
that registers and logs in over the API, connects brokers, creates, updates, starts and
stops a strategy, fires BUYs and SELLs from the scheduler, trades at the paper broker and
the Kite simulator (with its fault injection: rate limits, rejections, a dropped feed),
takes a stop-loss off a tick, meets risk limits, runs the market listener on the simulator's ticker and
recovers the runtime. Then every code must be in ``EventLog``."""

import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from channels.layers import InMemoryChannelLayer
from django.utils import timezone
from rest_framework.test import APIClient

from algotrader import redis_keys
from algotrader.redis_client import get_redis
from brokers.adapters.base import FeedEvents, TickHandler, TickStream
from brokers.adapters.registry import adapter_for
from brokers.kite_sim import KiteSimulator, SimAccount
from brokers.models import BrokerAccount
from execution.recovery.system import Trigger, system_recover
from execution.services import locks, strategy_buy_execute, strategy_sell_execute, strategy_stoploss_execute
from execution.services.losses import loss_limits_check
from execution.services.protective import protective_stop_move
from execution.services.risk import risk_limits_set
from execution.services.updates_protective import protectives_poll
from market.listener import MarketListener
from market.services import ticks_ingest
from market.trailing import TrailFollower
from monitoring.events import Event
from monitoring.models import EventLog
from strategies import readiness, runtime, scheduling
from strategies.exit_index import exits_arm_held
from strategies.models import Strategy
from strategies.stoploss_index import stoploss_arm
from strategies.tasks import record_trail_task
from tests.brokers.kite_sim_fixtures import kite_sim, sim_account
from tests.factories import BrokerAccountFactory
from tests.strategies.factories_scheduling import strategy_create
from tests.waiting import wait_until

__all__ = ["kite_sim", "sim_account"]

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

IST = ZoneInfo("Asia/Kolkata")
MONDAY_10AM = datetime(2026, 11, 23, 10, 0, tzinfo=IST)


def recorded() -> set[str]:
    return set(EventLog.objects.values_list("code", flat=True).distinct())


def explained(what: str) -> Callable[[], str]:
    return lambda: f"{what}: recorded {sorted(recorded())}"


def due_now(account: BrokerAccount | None = None, **fields: Any) -> Strategy:
    now = timezone.now()
    if fields.get("position") == Strategy.Position.BOUGHT:
        fields.setdefault("entry_price", Decimal("1540.20"))
        fields.setdefault("stop_trigger_price", Decimal("1524.80"))
    return strategy_create(
        buy_fire_at=now - timedelta(seconds=1), sell_fire_at=now + timedelta(minutes=5), account=account, **fields
    )


def users_and_the_strategy_api(kite_sim: KiteSimulator) -> None:
    """U1..U7, S1..S4, T3, B1, B2: what the app does, over HTTP."""
    # A fixed Monday morning: the plan's times lie ahead in the session whenever this runs.
    with time_machine.travel(MONDAY_10AM, tick=True):
        client = APIClient()
        credentials = {"email": "catalogue@example.com", "password": "a long passphrase 42"}
        assert client.post("/api/v1/auth/register/", credentials, format="json").status_code == 202
        login = client.post("/api/v1/auth/login/", credentials, format="json")
        assert login.status_code == 200, login.json()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {login.json()['access']}")

        paper = client.post("/api/v1/broker-accounts/", {"kind": "paper", "label": "Paper"}, format="json")
        assert paper.status_code == 201, paper.json()
        refused = client.post(
            "/api/v1/broker-accounts/",
            {"kind": "kite", "label": "Kite", "api_key": "nosuchkey", "api_secret": "nosecret", "access_token": "bad"},
            format="json",
        )
        assert refused.status_code == 400, refused.json()  # the simulator refused the credentials: B2

        plan = {"broker_account": paper.json()["id"], "exchange": "NSE", "symbol": "INFY", "quantity": 5}
        plan.update(buy_at="10:30", sell_at="15:00", stop_loss_percent="2.5")
        created = client.post("/api/v1/strategies/", plan, format="json")
        assert created.status_code == 201, created.json()
        url = f"/api/v1/strategies/{created.json()['id']}/"
        assert client.patch(url, {"quantity": 10}, format="json").status_code == 200
        assert client.post(url + "start/", format="json").status_code == 200
        moved = client.patch(url, {"buy_at": "10:45"}, format="json")  # a running strategy's time: T3
        assert moved.status_code == 200, moved.json()
        assert client.post(url + "stop/", format="json").status_code == 200


def scheduler_fires() -> None:
    """T1 and T2 from the scheduler's fan-out (the order tasks wait in the queue)."""
    due_now()
    now = timezone.now()
    strategy_create(
        buy_fire_at=now - timedelta(minutes=2),
        buy_fired_at=now - timedelta(minutes=2),
        sell_fire_at=now - timedelta(seconds=1),
        position=Strategy.Position.BOUGHT,
        entry_price=Decimal("1540.20"),
        stop_trigger_price=Decimal("1524.80"),
    )
    report = scheduling.fire_due(source="catalogue")
    assert report.buys >= 1 and report.sells >= 1


def paper_trading(settings: Any) -> None:
    """E1, E2, E3, X2, X3, B3, E5, L2, S5, M1, M2 and an order not final in time (L3)."""
    settings.PAPER_LATENCY_MS = 0
    account = BrokerAccountFactory.create()
    trader = due_now(account)
    assert strategy_buy_execute(strategy_id=trader.pk) is not None
    strategy_sell_execute(strategy_id=trader.pk, reason="SELL")

    stopped_out = due_now(account, position=Strategy.Position.BOUGHT)
    runtime.runtime_load(stopped_out)
    stoploss_arm(strategy_id=stopped_out.pk, instrument="NSE:INFY", trigger_price=Decimal("1524.80"))
    ingested = ticks_ingest(message={"ticks": [["NSE:INFY", 1520.0, time.time()]], "first": ["NSE:INFY"]})
    assert [trigger.strategy_id for trigger in ingested.triggers] == [stopped_out.pk]
    strategy_stoploss_execute(strategy_id=stopped_out.pk)

    contested = due_now(account)
    locks.lock_acquire(strategy_id=contested.pk)  # another worker holds it: X3
    assert strategy_buy_execute(strategy_id=contested.pk) is None

    settings.PAPER_LATENCY_MS = 3000
    settings.ORDER_FOLLOW_SECONDS = 0.2  # the fill outlasts the follow: left to recovery (L3)
    slow = due_now(account)
    strategy_buy_execute(strategy_id=slow.pk)


def trailing_stop_and_target(account: BrokerAccount) -> None:
    """P4 (a trailing stop raised by a tick, recorded) and P5 (a target reached, exited)."""
    trailed = due_now(account, position=Strategy.Position.BOUGHT, stop_loss_trail_percent=Decimal("1"))
    targeted = due_now(account, position=Strategy.Position.BOUGHT, target_price=Decimal("1560.00"))
    for strategy in (trailed, targeted):
        runtime.runtime_load(strategy)
        strategy.refresh_from_db()
        stoploss_arm(strategy_id=strategy.pk, instrument="NSE:INFY", trigger_price=Decimal("1524.80"))
        exits_arm_held(strategy)
    ingested = ticks_ingest(message={"ticks": [["NSE:INFY", 1561.0, time.time()]]}, trails=TrailFollower())
    assert [(t.strategy_id, t.reason) for t in ingested.triggers] == [(targeted.pk, "TARGET")]
    assert [m.strategy_id for m in ingested.moves] == [trailed.pk]
    [move] = ingested.moves
    record_trail_task(trailed.pk, repr(move.high), repr(move.stop))  # as the orders worker runs it
    strategy_stoploss_execute(strategy_id=targeted.pk, reason="TARGET")


def protective_stops(settings: Any) -> None:
    """P1 (a filled BUY's resting stop), P2 (the stop moved) and P3 (the broker's trigger filled it)."""
    settings.PAPER_LATENCY_MS = 0
    settings.ORDER_FOLLOW_SECONDS = 5.0
    settings.PROTECTIVE_STOPS = True
    settings.PROTECTIVE_POLL_SECONDS = 0.1
    protected = due_now(BrokerAccountFactory.create())
    get_redis().hset(redis_keys.price("NSE", "INFY"), mapping={"price": "1541.00", "ts": time.time()})
    assert strategy_buy_execute(strategy_id=protected.pk) is not None
    protected.refresh_from_db()
    assert protected.stop_trigger_price is not None
    Strategy.objects.filter(pk=protected.pk).update(stop_trigger_price=protected.stop_trigger_price + 5)
    assert protective_stop_move(strategy_id=protected.pk, trigger_price=protected.stop_trigger_price + 5)
    get_redis().hset(redis_keys.price("NSE", "INFY"), mapping={"price": "1500.00", "ts": time.time()})
    time.sleep(0.2)
    assert protectives_poll() == 1


def readiness_check() -> None:
    """R1 (a run's readiness checked: its account needs a login) and R2 (still not at its BUY: skipped)."""
    unready = due_now(BrokerAccountFactory.create(status=BrokerAccount.Status.LOGIN_REQUIRED))
    assert not readiness.readiness_check_runs(strategy_ids=[unready.pk])[unready.pk].ready
    assert strategy_buy_execute(strategy_id=unready.pk) is None


def risk_limits(settings: Any) -> None:
    """G1 (a BUY past max_open_positions refused) and G2 (the day's loss limit reached)."""
    settings.PROTECTIVE_STOPS = False
    account = BrokerAccountFactory.create()
    get_redis().hset(redis_keys.price("NSE", "INFY"), mapping={"price": "1541.00", "ts": time.time()})
    held, refused = due_now(account), due_now(account)
    assert strategy_buy_execute(strategy_id=held.pk) is not None
    risk_limits_set(user=account.owner, max_open_positions=1, max_loss_per_day=Decimal("1"))
    assert strategy_buy_execute(strategy_id=refused.pk) is None
    get_redis().hset(redis_keys.price("NSE", "INFY"), mapping={"price": "1500.00", "ts": time.time()})
    assert loss_limits_check(user_id=account.owner_id) == [held.pk]


def kite_faults(settings: Any, kite_sim: KiteSimulator, sim_account: SimAccount) -> BrokerAccount:
    """B4 from a rejection, E4 and X5 from rate limits, L4 alerts with them."""
    settings.SAFETY_MAX_BROKER_ERRORS = 3
    settings.ORDER_RETRY_SECONDS_BUY = 1.0
    settings.ORDER_RETRY_BACKOFF_MAX_SECONDS = 0.1
    account: BrokerAccount = BrokerAccountFactory.create(
        kite=True,
        api_key=sim_account.api_key,
        api_secret=sim_account.api_secret,
        access_token=sim_account.access_token,
        broker_user_id=sim_account.user_id,
    )
    rejected = due_now(account)
    kite_sim.set_fault("reject", api_key=sim_account.api_key, message="Circuit limit breached")
    strategy_buy_execute(strategy_id=rejected.pk)

    throttled = due_now(account)
    due_now(account, position=Strategy.Position.BOUGHT)
    kite_sim.set_fault("rate_limit", endpoint="place_order", api_key=sim_account.api_key, times=None)
    strategy_buy_execute(strategy_id=throttled.pk)
    kite_sim.clear_faults()
    return account


def market_feed(kite_sim: KiteSimulator, account: BrokerAccount) -> None:
    """B5, M3, B6, M4 from the listener on the simulator's real ticker, its feed dropped."""
    watched = due_now(BrokerAccountFactory.create())
    runtime.runtime_load(watched)
    adapter = adapter_for(account)

    def stream_factory(on_ticks: TickHandler, events: FeedEvents) -> TickStream:
        return adapter.tick_stream(on_ticks, events)

    listener = MarketListener(stream_factory=stream_factory, simulated_venue=True, channel_layer=InMemoryChannelLayer())
    stop = threading.Event()
    thread = threading.Thread(target=listener.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_until(lambda: EventLog.objects.filter(code="B5").exists(), message=explained("the feed connects (B5)"))
        kite_sim.set_fault("feed_disconnect")
        wait_until(lambda: EventLog.objects.filter(code="M4").exists(), message=explained("the feed comes back (M4)"))
    finally:
        stop.set()
        thread.join(timeout=20)
    assert redis_keys.instrument("NSE", "INFY") in listener.subscribed or not thread.is_alive()


def test_every_code_of_the_catalogue_is_emitted_by_a_real_path(settings, kite_sim, sim_account):
    settings.KITE_API_ROOT = kite_sim.api_root
    settings.KITE_WS_ROOT = kite_sim.ws_root
    settings.KITE_SIMULATED = True
    settings.ORDER_FOLLOW_SECONDS = 5.0
    settings.ORDER_UNKNOWN_GRACE_SECONDS = 0.5

    users_and_the_strategy_api(kite_sim)
    scheduler_fires()
    paper_trading(settings)
    trailing_stop_and_target(BrokerAccountFactory.create())
    protective_stops(settings)
    readiness_check()
    risk_limits(settings)
    account = kite_faults(settings, kite_sim, sim_account)
    market_feed(kite_sim, account)
    assert system_recover(trigger=Trigger.COMMAND) is not None  # X1, X4

    catalogue = {event.code for event in Event}
    # U1-U7, S1-S5, T1-T3, M1-M4, E1-E5, B1-B6, X1-X5, L1-L4, and P1-P5, R1-R2, G1-G2 (docs/events.md)
    assert len(catalogue) == 48
    assert catalogue - recorded() == set()
