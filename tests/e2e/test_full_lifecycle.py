"""The whole system end to end, as the mobile app sees it. Every process of the Procfile
that trades (web, orders worker, stop-loss worker, beat, market listener, tick consumer)
and the Kite simulator run as real subprocesses on free ports, on the test database and
Redis database. A user registers, connects a Kite account through the daily login, and
starts two strategies through the REST API while listening on the WebSocket: one leaves
by stop-loss (the simulator's price is moved through its stop), one by the SELL at its
time. The scenario runs once; the tests below read what it saw.

EVENT-MAP's full lifecycle: U6 -> S1 -> T1 -> E1 -> M1 -> M2 -> E3 -> S5 -> L1/L2
(L2 logs each order's broker request and response as it is answered, L1 the strategy's
BUY and exit outcomes once its position moved), and the SELL flow T2 -> E2 -> exit.
M1 is recorded sparsely (market.services): an EventLog row for an instrument's first
tick after its subscription (which START causes), every other tick only counted, and
pushed to the app as a live price."""

from __future__ import annotations

import os
import secrets
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import pytest
import requests
from django.db import connection

from algotrader.appclient import AppClient
from algotrader.processes import ProcessGroup, celery, free_port, manage
from algotrader.redis_client import get_redis
from monitoring.events import Event
from tests.strategies.scheduling_helpers import declare_queues
from tests.waiting import other_sessions_ended, wait_until

# Transactional: the database is flushed after each test, so what the scenario's processes
# committed is gone before the next module (the scenario has collected it all by then).
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

EXCHANGE_ZONE = ZoneInfo("Asia/Kolkata")  # the simulated exchange keeps NSE's wall clock
BUY_LEAD = timedelta(seconds=5)
SELL_HOLD = timedelta(seconds=60)  # the shortest hold a plan may have
PASSWORD = "a long and unguessable passphrase"
VISIBLE = {event.code for event in Event if event.user_visible}


@dataclass
class Outcome:
    """What the scenario saw, collected before any test looks (the stack is gone by then)."""

    stoploss: dict[str, Any]
    sell: dict[str, Any]
    timelines: dict[int, list[dict[str, Any]]]
    socket: list[dict[str, Any]]
    crossed_at_price: Decimal
    simulator_book: list[dict[str, Any]]
    intents: list[dict[str, Any]]
    tick_records: list[dict[str, Any]]  # M1 EventLog rows (not on any user's timeline)
    socket_error: str | None = None
    logs: str = ""
    seconds: float = 0.0

    def codes(self, strategy: dict[str, Any]) -> list[str]:
        return [event["code"] for event in self.timelines[strategy["id"]]]

    def first(self, strategy: dict[str, Any], code: str, **payload: Any) -> dict[str, Any]:
        for event in self.timelines[strategy["id"]]:
            if event["code"] == code and all(event["payload"].get(k) == v for k, v in payload.items()):
                return event
        raise AssertionError(f"no {code} {payload or ''} on #{strategy['id']}: {self.codes(strategy)}\n{self.logs}")


def plan_times(hold: timedelta) -> tuple[date, str, str]:
    """A BUY ``BUY_LEAD`` ahead and a SELL ``hold`` later on one exchange day (near midnight,
    exchange time, wait for the new day: a plan cannot span two)."""
    buy = (datetime.now(EXCHANGE_ZONE) + BUY_LEAD).replace(microsecond=0) + timedelta(seconds=1)
    if (buy + hold + timedelta(seconds=5)).date() != buy.date():
        wait_until(
            lambda: datetime.now(EXCHANGE_ZONE).date() > buy.date(),
            timeout=(BUY_LEAD + hold).total_seconds() + 60,
            interval=0.5,
        )
        return plan_times(hold)
    return buy.date(), buy.strftime("%H:%M:%S"), (buy + hold).strftime("%H:%M:%S")


def database_url() -> str:
    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path="/" + connection.settings_dict["NAME"]))


def start_stack(group: ProcessGroup, sim_port: int, ws_port: int, web_port: int) -> str:
    """Everything but the market listener, which needs the Kite account's id to follow its feed."""
    suffix = uuid.uuid4().hex[:8]
    group.start(
        "kite_sim",
        manage("run_kite_sim", "--port", str(sim_port), "--ws-port", str(ws_port), "--tick-interval", "0.2"),
    )
    web = ["-m", "uvicorn", "algotrader.asgi:application", "--host", "127.0.0.1", "--port", str(web_port)]
    group.start("web", [sys.executable, *web, "--no-access-log", "--lifespan", "off"])
    group.start(
        "worker",
        celery(
            "worker",
            "-Q",
            "orders,scheduler",
            "-n",
            f"e2e-orders-{suffix}@%h",
            "--concurrency",
            "2",
            "--without-mingle",
            "--without-gossip",
            "--loglevel",
            "INFO",
        ),
    )
    group.start(
        "stoploss",
        celery(
            "worker",
            "-Q",
            "stoploss",
            "-n",
            f"e2e-stoploss-{suffix}@%h",
            "--prefetch-multiplier",
            "1",
            "--concurrency",
            "1",
            "--without-mingle",
            "--without-gossip",
            "--loglevel",
            "INFO",
        ),
    )
    group.start("beat", celery("beat", "--loglevel", "INFO"))
    group.start("ticks", manage("runworker", "ticks"))
    return suffix


def wait_ready(group: ProcessGroup, web: str, sim: str, suffix: str) -> None:
    from algotrader.celery import app

    def answers(url: str) -> bool:
        try:
            return requests.get(url, timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def up(condition: Any) -> Any:
        return wait_until(
            lambda: condition() or (group.dead() and pytest.fail(group.logs())),
            timeout=90,
            interval=0.2,
            message=group.logs,
        )

    up(lambda: answers(f"{web}/healthz"))
    up(lambda: answers(f"{sim}/_sim/health"))
    host = os.uname().nodename
    for queue in ("orders", "stoploss"):
        up(lambda q=queue: app.control.ping(destination=[f"e2e-{q}-{suffix}@{host}"], timeout=0.5))
    up(lambda: "beat: Starting" in group.log("beat"))


@pytest.fixture(scope="module")
def outcome(
    django_db_setup: None, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Outcome]:
    from execution.models import Order
    from monitoring.models import EventLog
    from strategies.calendar_seed import seed_market_calendar
    from strategies.models import MarketHoliday, MarketSession

    began = time.monotonic()
    with django_db_blocker.unblock():
        seed_market_calendar(MarketSession, MarketHoliday)  # earlier transactional tests flush it
    get_redis().flushdb()
    declare_queues()
    sim_port, ws_port, web_port = free_port(), free_port(), free_port()
    sim, web = f"http://127.0.0.1:{sim_port}", f"http://127.0.0.1:{web_port}"
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "KITE_API_ROOT": sim,
        "KITE_WS_ROOT": f"ws://127.0.0.1:{ws_port}",
        "KITE_LOGIN_URL": f"{sim}/connect/login",
        "KITE_SIMULATED": "true",
        "MARKET_PRICE_PUSH_INTERVAL": "0.2",
        "MARKET_RECONCILE_SECONDS": "2",
    }
    group = ProcessGroup(tmp_path_factory.mktemp("e2e"), env)
    try:
        suffix = start_stack(group, sim_port, ws_port, web_port)
        wait_ready(group, web, sim, suffix)

        # --- as the app: a new user, a Kite account through the daily login -----------------
        kite = requests.post(f"{sim}/_sim/accounts", json={}, timeout=10).json()["data"]
        app = AppClient(web)
        email = f"e2e-{secrets.token_hex(3)}@example.com"
        app.register(email, PASSWORD)
        app.login(email, PASSWORD)
        submitted = app.submit_kite(api_key=kite["api_key"], api_secret=kite["api_secret"])
        assert submitted["status"] == "login_required"
        account = app.kite_login(submitted["id"])
        assert account["status"] == "active", account
        group.start(
            "market",
            manage("run_market_listener"),
            env={"MARKET_FEED_ACCOUNT_ID": str(account["id"])},
        )
        with django_db_blocker.unblock():
            wait_until(lambda: EventLog.objects.filter(code="B5").exists(), timeout=30, message=group.logs)
        stream = app.events()

        # --- two strategies: one exits by stop-loss, one by the SELL at its time -----------
        trade_date, buy_at, sell_at = plan_times(SELL_HOLD)
        common = {
            "broker_account": account["id"],
            "exchange": "NSE",
            "quantity": 1,
            "buy_at": buy_at,
            "trade_date": trade_date.isoformat(),
        }
        stoploss = app.create_strategy(**common, symbol="INFY", sell_at=sell_at, stop_loss_percent="2")
        sell = app.create_strategy(**common, symbol="TCS", sell_at=sell_at, stop_loss_percent="5")
        app.start(stoploss["id"])
        app.start(sell["id"])

        bought = wait_until(lambda: _in(app, stoploss, position="BOUGHT"), timeout=40, message=group.logs)
        # The protective stop rests at the broker before the price falls (placed just after the fill).
        bought = wait_until(lambda: _protected(app, stoploss), timeout=30, message=group.logs)
        # The price moves through the stop once the app has a live INFY price after its E1
        # (prices are pushed every 0.2 s; on a loaded machine the first may come later).
        wait_until(lambda: _price_after_e1(stream.received, stoploss["id"]), timeout=30, message=group.logs)
        crossed = Decimal(bought["stop_trigger_price"]) - Decimal("1.00")
        requests.post(
            f"{sim}/_sim/price", json={"exchange": "NSE", "symbol": "INFY", "price": str(crossed)}, timeout=10
        ).raise_for_status()
        stoploss = wait_until(lambda: _in(app, stoploss, status="EXITED"), timeout=30, message=group.logs)
        sell = wait_until(
            lambda: _in(app, sell, status="EXITED"), timeout=SELL_HOLD.total_seconds() + 40, message=group.logs
        )
        # The exits' last pushes (E5, S5) cross the channel layer a moment after they are recorded.
        wait_until(
            lambda: _pushed(app, stream.received, (stoploss, sell)), timeout=30, interval=0.2, message=group.logs
        )
        socket_error = None if stream.error is None else repr(stream.error)
        stream.close()

        with django_db_blocker.unblock():
            intents = list(
                Order.objects.filter(strategy_id__in=[stoploss["id"], sell["id"]])
                .order_by("id")
                .values("tag", "side", "reason", "status", "broker_order_id", "strategy_id")
            )
            ticks = list(EventLog.objects.filter(code="M1").order_by("id").values("payload", "created_at"))
        seen = Outcome(
            stoploss=stoploss,
            sell=sell,
            timelines={s["id"]: app.timeline(s["id"]) for s in (stoploss, sell)},
            socket=list(stream.received),
            socket_error=socket_error,
            crossed_at_price=crossed,
            simulator_book=requests.get(f"{sim}/_sim/orders", params={"api_key": kite["api_key"]}, timeout=10).json()[
                "data"
            ],
            intents=[dict(intent) for intent in intents],
            tick_records=[{"instrument": t["payload"].get("instrument"), "created_at": t["created_at"]} for t in ticks],
            logs=group.logs(3000),
            seconds=time.monotonic() - began,
        )
    finally:
        group.stop_all()
        with django_db_blocker.unblock():
            wait_until(other_sessions_ended)  # before the test database is dropped at the end of the run
    yield seen


def _price_after_e1(received: list[dict[str, Any]], strategy_id: int) -> bool:
    messages = list(received)  # the socket's thread appends to it
    codes = [(m["event"]["code"], m["event"]["strategy_id"]) if m.get("type") == "event" else None for m in messages]
    if ("E1", strategy_id) not in codes:
        return False
    after = messages[codes.index(("E1", strategy_id)) + 1 :]
    return any(m.get("type") == "price" and m["instrument"] == "NSE:INFY" for m in after)


def _pushed(app: AppClient, received: list[dict[str, Any]], strategies: tuple[dict[str, Any], ...]) -> bool:
    """Every visible event the strategies' timelines hold now has reached the socket."""
    messages = list(received)  # the socket's thread appends to it
    pushed = {m["event"]["id"] for m in messages if m.get("type") == "event"}
    return all(e["id"] in pushed for s in strategies for e in app.timeline(s["id"]) if e["code"] in VISIBLE)


def _protected(app: AppClient, strategy: dict[str, Any]) -> dict[str, Any] | None:
    current = app.strategy(strategy["id"])
    return current if (current.get("protective_order") or {}).get("status") == "PLACED" else None


def _in(app: AppClient, strategy: dict[str, Any], **wanted: str) -> dict[str, Any] | None:
    current = app.strategy(strategy["id"])
    return current if all(current[k] == v for k, v in wanted.items()) else None


def at(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["created_at"])


def test_a_stop_loss_exit_follows_the_event_maps_full_lifecycle_in_order(outcome: Outcome) -> None:
    s = outcome.stoploss
    chain = [outcome.first(s, code) for code in ("U6", "S1", "T1", "E1")]
    m2, e3, s5 = outcome.first(s, "M2"), outcome.first(s, "E3"), outcome.first(s, "S5")
    logged = outcome.first(s, "L1", action="SL")  # L1: the strategy's SL outcome, once its exit won
    chain += [m2, e3, s5, logged]

    assert [e["id"] for e in chain] == sorted(e["id"] for e in chain), outcome.codes(s)
    assert s["status"] == "EXITED" and s["position"] == "EXITED_BY_SL" and s["exit_reason"] == "STOPLOSS"
    assert s5["payload"]["reason"] == "STOPLOSS"
    assert logged["payload"]["outcome"] == "COMPLETE" and outcome.first(s, "L1", action="BUY")["id"] < m2["id"]
    assert Decimal(m2["payload"]["price"]) <= Decimal(s["stop_trigger_price"]) < outcome.crossed_at_price + 2
    # L2: each order's broker request and response, the BUY's after E1 and the exit's after E3;
    # between them the protective stop was placed (P1): the exit converts that one order.
    buy_log = outcome.first(s, "L2", reason="BUY")
    p1 = outcome.first(s, "P1")
    exit_log = next(
        e
        for e in outcome.timelines[s["id"]]
        if e["code"] == "L2" and e["payload"].get("reason") == "STOPLOSS" and e["id"] > e3["id"]
    )
    assert chain[3]["id"] < buy_log["id"] < p1["id"] < m2["id"] and e3["id"] < exit_log["id"]
    assert {"request", "response"} <= set(exit_log["payload"])
    assert "SELL" not in [e["payload"].get("reason") for e in outcome.timelines[s["id"]] if e["code"] == "E2"]


def test_m1_is_recorded_for_the_first_tick_after_start_and_every_tick_reaches_the_app_as_a_price(
    outcome: Outcome,
) -> None:
    s = outcome.stoploss
    s1, e1, m2 = outcome.first(s, "S1"), outcome.first(s, "E1"), outcome.first(s, "M2")
    [first_tick] = [t for t in outcome.tick_records if t["instrument"] == "NSE:INFY"]
    # The socket's own order: the prices the app saw between its E1 and its M2, and after.
    arrived = [m.get("event", {}).get("id") for m in outcome.socket]
    after_buy = outcome.socket[arrived.index(e1["id"]) + 1 :]
    until_m2 = after_buy[: [m.get("event", {}).get("id") for m in after_buy].index(m2["id"])]

    def infy(messages: list[dict[str, Any]]) -> list[Decimal]:
        return [Decimal(m["price"]) for m in messages if m.get("type") == "price" and m["instrument"] == "NSE:INFY"]

    assert at(s1) <= first_tick["created_at"] <= at(m2)
    assert infy(until_m2), "no live INFY price reached the app between its BUY and its stop-loss"
    assert min(infy(after_buy)) <= Decimal(s["stop_trigger_price"])  # the crossing tick reached the app too


def test_the_sell_path_is_t2_then_e2_then_the_exit(outcome: Outcome) -> None:
    s = outcome.sell
    chain = [outcome.first(s, code) for code in ("U6", "S1", "T1", "E1")]
    t2, e2 = outcome.first(s, "T2"), outcome.first(s, "E2", reason="SELL")
    sold = outcome.first(s, "E5", side="SELL")
    s5 = outcome.first(s, "S5")
    chain += [t2, e2, sold, s5, outcome.first(s, "L1", action="SELL")]

    assert [e["id"] for e in chain] == sorted(e["id"] for e in chain), outcome.codes(s)
    assert sold["payload"]["status"] == "COMPLETE" and s5["payload"]["reason"] == "SELL"
    assert s["status"] == "EXITED" and s["position"] == "SOLD"
    assert "M2" not in outcome.codes(s) and "E3" not in outcome.codes(s)


def test_the_app_socket_carried_each_timeline_as_it_happened(outcome: Outcome) -> None:
    assert outcome.socket_error is None
    for s in (outcome.stoploss, outcome.sell):
        pushed = [
            m["event"]["id"]
            for m in outcome.socket
            if m.get("type") == "event" and m["event"]["strategy_id"] == s["id"]
        ]
        visible = [e["id"] for e in outcome.timelines[s["id"]] if e["code"] in VISIBLE]

        assert sorted(pushed) == visible, (outcome.codes(s), pushed)  # the socket opened before U4


def test_the_simulators_order_book_holds_exactly_the_intents(outcome: Outcome) -> None:
    book = {(o["tag"], o["transaction_type"], o["status"], o["order_id"]) for o in outcome.simulator_book}
    intents = {(o["tag"], o["side"], o["status"], o["broker_order_id"]) for o in outcome.intents}

    assert len(outcome.simulator_book) == len(outcome.intents) == 4
    assert book == intents
    assert sorted((o["strategy_id"], o["reason"]) for o in outcome.intents) == sorted(
        [
            (outcome.stoploss["id"], "BUY"),
            (outcome.stoploss["id"], "STOPLOSS"),
            (outcome.sell["id"], "BUY"),
            (outcome.sell["id"], "SELL"),
        ]
    )
    print(f"end-to-end scenario: {outcome.seconds:.1f} s")  # noqa: T201
