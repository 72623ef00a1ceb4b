"""The official ``KiteTicker`` (Twisted/autobahn, in a subprocess) receives the
simulator's ticks, parses them into the documented tick dicts, and gets the
account's order updates through ``on_order_update``."""

import json
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

CLIENT = Path(__file__).with_name("kite_ticker_client.py")
ROOT = Path(__file__).resolve().parents[3]
INFY = 408065
NIFTY_50 = 256265


class TickerProcess:
    """The client script, its stdout read line by line on a thread."""

    def __init__(self, kite_sim, account, *, seconds: float, mode: str, tokens: list[int], access_token=None):
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(CLIENT),
                kite_sim.ws_root,
                account.api_key,
                access_token or account.access_token,
                str(seconds),
                mode,
                *map(str, tokens),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.events.put(json.loads(line))

    def next_event(self, kind: str, timeout: float = 10.0) -> dict[str, Any]:
        while True:
            event = self.events.get(timeout=timeout)
            if event["event"] == kind:
                return event

    def finish(self) -> list[dict[str, Any]]:
        self.process.wait(timeout=30)
        rest: list[dict[str, Any]] = []
        while not self.events.empty():
            rest.append(self.events.get())
        return rest


def test_kite_ticker_receives_full_and_quote_ticks(kite_sim, sim_account):
    kite_sim.set_price("NSE", "INFY", 1500)
    client = TickerProcess(kite_sim, sim_account, seconds=2, mode="full", tokens=[INFY, NIFTY_50])

    client.next_event("connected")
    full_ticks = None
    while full_ticks is None:
        ticks = client.next_event("ticks")["ticks"]
        if {t["mode"] for t in ticks} == {"full"} and len(ticks) == 2:
            full_ticks = {t["instrument_token"]: t for t in ticks}
    client.finish()

    infy, nifty = full_ticks[INFY], full_ticks[NIFTY_50]
    assert infy["tradable"] is True
    assert 1400 < infy["last_price"] < 1600
    assert infy["ohlc"]["close"] == 1540.2
    assert len(infy["depth"]["buy"]) == len(infy["depth"]["sell"]) == 5
    assert infy["depth"]["buy"][0]["price"] < infy["last_price"] < infy["depth"]["sell"][0]["price"]
    assert infy["exchange_timestamp"] is not None
    assert nifty["tradable"] is False
    assert nifty["ohlc"]["close"] == 25960.55


def test_kite_ticker_gets_order_updates_of_its_account(kite_sim, sim_account, kite):
    client = TickerProcess(kite_sim, sim_account, seconds=3, mode="ltp", tokens=[INFY])
    client.next_event("connected")

    order_id = kite.place_order(
        variety="regular",
        exchange="NSE",
        tradingsymbol="INFY",
        transaction_type="BUY",
        quantity=2,
        product="MIS",
        order_type="MARKET",
        tag="viaticker",
    )
    statuses = []
    while "COMPLETE" not in statuses:
        update = client.next_event("order")["data"]
        assert update["order_id"] == order_id
        assert update["tag"] == "viaticker"
        statuses.append(update["status"])
    client.finish()

    assert statuses == ["OPEN", "COMPLETE"]


def test_kite_ticker_is_refused_with_a_bad_access_token(kite_sim, sim_account):
    client = TickerProcess(kite_sim, sim_account, seconds=2, mode="ltp", tokens=[INFY], access_token="wrong")

    events = client.finish()

    assert "connected" not in [e["event"] for e in events]
    assert any("403" in e.get("reason", "") for e in events), events


def test_a_modification_reaches_kite_ticker_as_an_update(kite_sim, sim_account, kite):
    kite_sim.set_price("NSE", "INFY", 1540)
    client = TickerProcess(kite_sim, sim_account, seconds=3, mode="ltp", tokens=[INFY])
    client.next_event("connected")
    order_id = kite.place_order(
        variety="regular",
        exchange="NSE",
        tradingsymbol="INFY",
        transaction_type="BUY",
        quantity=2,
        product="MIS",
        order_type="LIMIT",
        price=1400,
    )
    assert client.next_event("order")["data"]["status"] == "OPEN"

    kite.modify_order("regular", order_id, price=1401)

    update = client.next_event("order")["data"]
    client.finish()
    assert (update["order_id"], update["status"], update["price"]) == (order_id, "UPDATE", 1401)
