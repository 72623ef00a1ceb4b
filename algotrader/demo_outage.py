"""`make demo`'s fourth lifecycle: the broker's protective stop exits while our workers are down.
Once the BUY filled and its protective stop rests (P1), the Celery workers stop consuming (Celery's
remote control, as an operator would), the Kite simulator's price falls through the stop, its book
fills the stop, the workers return, and the strategy's timeline completes (P3, then S5 STOPLOSS)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from enum import Enum
from typing import Any

import requests
from celery import Celery

from algotrader.appclient import AppClient

OUTAGE_SYMBOL = "SBIN"
OUTAGE_TICK = Decimal("0.05")  # SBIN's tick size (brokers/data/nse_equities.csv)
# How far below the stop's trigger the price is put: clear of the simulator's own walk.
FALL = Decimal("0.01")
CONTROL_TIMEOUT = 3.0  # seconds a remote-control broadcast waits for the workers' replies
FILL_TIMEOUT = 30.0  # the simulator's engine fills a triggered stop within a second or two
# How long the workers stay down after the broker's fill: long enough to see what, if anything,
# records the fill without them.
DOWN_AFTER_FILL = 8.0
PAPER_NOTE = (
    "The fourth lifecycle (the broker's stop exits while the workers are down) runs with"
    " --broker kite-sim only: the paper broker's prices are a walk inside the `market` process,"
    " which nothing outside it can move."
)


@dataclass(frozen=True)
class Consumed:
    """One queue one worker consumes, as Celery's ``active_queues`` reports it."""

    worker: str
    queue: str
    exchange: str
    exchange_type: str
    routing_key: str


def consumed_queues(reply: Mapping[str, Sequence[Mapping[str, Any]]] | None) -> list[Consumed]:
    """Each (worker, queue) of an ``inspect().active_queues()`` reply, in a stable order."""
    consumed = []
    for worker, queues in sorted((reply or {}).items()):
        for queue in queues:
            exchange = queue.get("exchange") or {}
            consumed.append(
                Consumed(
                    worker=worker,
                    queue=queue["name"],
                    exchange=exchange.get("name") or queue["name"],
                    exchange_type=exchange.get("type") or "direct",
                    routing_key=queue.get("routing_key") or queue["name"],
                )
            )
    return sorted(consumed, key=lambda c: (c.worker, c.queue))


def price_through(trigger: Decimal, *, fall: Decimal = FALL, tick: Decimal = OUTAGE_TICK) -> Decimal:
    """A price ``fall`` below a SELL stop's trigger, down to the tick: it crosses the trigger."""
    return (trigger * (1 - fall) / tick).to_integral_value(rounding=ROUND_DOWN) * tick


def describe(consumed: list[Consumed]) -> str:
    """``orders@host (orders), stoploss@host (stoploss)``: who consumes what, for the console."""
    by_worker: dict[str, list[str]] = {}
    for item in consumed:
        by_worker.setdefault(item.worker, []).append(item.queue)
    return ", ".join(f"{worker} ({', '.join(queues)})" for worker, queues in by_worker.items())


class Workers:
    """The stack's Celery workers, reached through Celery's remote control over the broker
    (REDIS_URL): no import of the project's apps, and nothing stopped that must be restarted."""

    def __init__(self, broker_url: str) -> None:
        self.app = Celery("algotrader-demo", broker=broker_url, set_as_current=False)
        self.cancelled: list[Consumed] = []

    def consuming(self) -> list[Consumed]:
        return consumed_queues(self.app.control.inspect(timeout=CONTROL_TIMEOUT).active_queues())

    def stop(self) -> list[Consumed]:
        """Every worker stops consuming every queue it consumes: tasks wait in Redis meanwhile
        (a task a worker had already taken still runs)."""
        for item in self.consuming():
            self.cancelled.append(item)  # before the call: a lost reply must still be undone
            self.app.control.cancel_consumer(item.queue, destination=[item.worker], reply=True, timeout=CONTROL_TIMEOUT)
        return list(self.cancelled)

    def restore(self) -> list[Consumed]:
        """What ``stop`` cancelled is consumed again; safe to call twice."""
        restored, self.cancelled = self.cancelled, []
        for item in restored:
            self.app.control.add_consumer(
                item.queue,
                exchange=item.exchange,
                exchange_type=item.exchange_type,
                routing_key=item.routing_key,
                destination=[item.worker],
                reply=True,
                timeout=CONTROL_TIMEOUT,
            )
        return restored


class Phase(Enum):
    HOLDING = "holding"  # waiting for P1, and for the other three to end
    FALLEN = "fallen"  # workers down, the price moved: waiting for the simulator's fill
    FILLED = "filled"  # the broker's stop filled: watching what records it while the workers are down
    RETURNED = "returned"  # the workers are back and the fill not recorded yet: watching what records it
    BACK = "back"  # told: the demo waits for the last events


@dataclass
class BrokerStopExit:
    """The fourth lifecycle, one ``step`` per turn of the demo's event loop."""

    client: AppClient
    workers: Workers
    sim_root: str
    api_key: str
    strategy_id: int
    log: Callable[[str], None]
    phase: Phase = Phase.HOLDING
    broker_order_id: str = ""
    entry_price: str = ""
    since: float = field(default_factory=time.monotonic)

    @property
    def done(self) -> bool:
        return self.phase is Phase.BACK

    def step(self, *, others_final: bool) -> None:
        if self.phase is Phase.HOLDING and others_final:
            self._fall_while_down()
        elif self.phase is Phase.FALLEN:
            self._watch_book()
        elif self.phase is Phase.FILLED:
            self._watch_strategy()
        elif self.phase is Phase.RETURNED:
            self._watch_recovery()

    def _fall_while_down(self) -> None:
        strategy = self.client.strategy(self.strategy_id)
        protective = strategy.get("protective_order") or {}
        if strategy["status"] in ("STOPPED", "EXITED"):
            self.log(f"#{self.strategy_id} ended before its outage ({strategy['status']}/{strategy['position']})")
            self.phase = Phase.BACK
            return
        if strategy["position"] != "BOUGHT" or protective.get("status") != "PLACED":
            return
        self.broker_order_id = str(protective["broker_order_id"])
        self.entry_price = str(strategy["entry_price"])
        trigger = Decimal(str(protective["trigger_price"]))
        self.log(
            f"#{self.strategy_id}'s protective stop rests at the broker (P1): {protective['order_type']} SELL"
            f" {protective['quantity']} at trigger {trigger}, order {self.broker_order_id}"
        )
        stopped = self.workers.stop()
        if stopped:
            self.log(f"the workers stop: cancel_consumer (Celery's remote control) on {describe(stopped)}")
            self.log(
                "  web, beat, market, ticks and orderupdates stay up; the tasks they send wait in Redis"
                f" (still consuming: {describe(self.workers.consuming()) or 'nothing'})"
            )
        else:
            self.log("no Celery worker answered the remote control: the workers stay up for this one")
        price = price_through(trigger)
        self._move_price(str(price))
        self.log(f"the price falls: NSE:{OUTAGE_SYMBOL} at {price} at the simulator (POST /_sim/price)")
        self.phase, self.since = Phase.FALLEN, time.monotonic()

    def _watch_book(self) -> None:
        order = self._sim_order()
        if order is not None and order["status"] == "COMPLETE":
            self.log(
                f"the simulator's book: order {order['order_id']} {order['transaction_type']}"
                f" {order['order_type']} {order['status']} at {order.get('average_price')}: the broker's stop"
                " sold the position"
            )
            # Each run would otherwise start lower, until a stop falls outside the circuit band.
            self._move_price(self.entry_price)
            self.log(f"(the demo puts the simulator's NSE:{OUTAGE_SYMBOL} back at {self.entry_price} for the next run)")
            self.phase, self.since = Phase.FILLED, time.monotonic()
        elif time.monotonic() - self.since > FILL_TIMEOUT:
            status = order["status"] if order else "not in the book"
            self.log(f"the simulator has not filled the stop in {FILL_TIMEOUT:.0f} s ({status})")
            self._return(Phase.RETURNED)

    def _watch_strategy(self) -> None:
        strategy = self.client.strategy(self.strategy_id)
        if _ended(strategy):
            self.log(
                "what really happened: the fill was recorded (P3, then S5 STOPLOSS) while no Celery worker"
                " consumed, by the orderupdates process, which follows the Kite account's order updates on"
                " the ticker and settles a protective stop's fill itself"
            )
            self._return(Phase.BACK)
        elif time.monotonic() - self.since > DOWN_AFTER_FILL:
            self.log(
                f"with the workers down nothing has recorded the fill: #{self.strategy_id} still says"
                f" {strategy['status']}/{strategy['position']}"
            )
            self._return(Phase.RETURNED)

    def _watch_recovery(self) -> None:
        if _ended(self.client.strategy(self.strategy_id)):
            self.log(
                "with the workers back the fill was recorded (P3, then S5 STOPLOSS): settlement's protective"
                " poll asks the broker about a resting stop's order (get_order)"
            )
            self.phase = Phase.BACK

    def _return(self, then: Phase) -> None:
        restored = self.workers.restore()
        if restored:
            self.log(f"the workers return: add_consumer on {describe(restored)}")
        self.phase = then

    def _move_price(self, price: str) -> None:
        requests.post(
            f"{self.sim_root}/_sim/price", json={"exchange": "NSE", "symbol": OUTAGE_SYMBOL, "price": price}, timeout=10
        ).raise_for_status()

    def _sim_order(self) -> dict[str, Any] | None:
        response = requests.get(f"{self.sim_root}/_sim/orders", params={"api_key": self.api_key}, timeout=10)
        response.raise_for_status()
        return next((o for o in response.json()["data"] if o["order_id"] == self.broker_order_id), None)


def _ended(strategy: dict[str, Any]) -> bool:
    return strategy["status"] in ("STOPPED", "EXITED") and strategy["position"] in ("SOLD", "EXITED_BY_SL")
