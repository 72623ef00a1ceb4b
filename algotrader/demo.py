"""`make demo`: against the stack `make run` started, act as a new user of the mobile app through
the public API and WebSocket only, with a paper account (or a simulated Kite one through the real
login), and trade three strategies out by the SELL, a stop-loss and STOP, printing their events; with
the Kite simulator a fourth exits by the broker's protective stop while the workers are down.

    python -m algotrader.demo [--broker paper|kite-sim] [--url http://127.0.0.1:8000]
"""

from __future__ import annotations

import argparse
import queue
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import requests

from algotrader.appclient import ApiError, AppClient, EventStream
from algotrader.demo_outage import OUTAGE_SYMBOL, PAPER_NOTE, BrokerStopExit, Workers
from algotrader.devenv import read_env
from algotrader.processes import ROOT, manage

# The simulated exchange's wall clock (the SIM venue's zone, as NSE's).
EXCHANGE_ZONE = ZoneInfo("Asia/Kolkata")
BUY_LEAD = timedelta(seconds=20)  # room to create, start and see a first price before the BUY
HOLD = timedelta(seconds=62)  # the plan needs the SELL at least a minute after the BUY
# The stop-loss strategy's stop, once bought, this far under the live price: a tick's usual move.
STOP_GAP = Decimal("0.0001")
OUTAGE_HOLD = timedelta(minutes=10)  # the fourth's SELL time stays well after its broker stop's exit
DEMO_KITE_KEY, DEMO_KITE_SECRET = "kitesim_demo_key", "kitesim_demo_secret"
SYMBOLS = {"sell": "INFY", "stoploss": "TCS", "stop": "RELIANCE", "outage": OUTAGE_SYMBOL}
EXITS = {
    "sell": "exit by SELL at the sell time",
    "stoploss": "exit by stop-loss",
    "stop": "exit by STOP",
    "outage": "exit by the broker's stop while the workers are down",
}
FINAL = frozenset({"STOPPED", "EXITED"})


def say(text: str = "") -> None:
    print(text, flush=True)  # noqa: T201 - a command-line program


@dataclass
class Demo:
    client: AppClient
    broker: str
    sim_root: str | None = None
    broker_url: str = ""
    outage: BrokerStopExit | None = None
    strategies: dict[str, dict[str, Any]] = field(default_factory=dict)  # role -> strategy
    started: float = field(default_factory=time.monotonic)

    @property
    def roles(self) -> dict[int, str]:
        return {strategy["id"]: role for role, strategy in self.strategies.items()}

    # --- setting up -----------------------------------------------------------------------

    def sign_up(self) -> None:
        email = f"demo-{datetime.now().strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}@example.com"
        password = secrets.token_urlsafe(16)
        self.client.register(email, password)
        self.client.login(email, password)
        say(f"Registered and logged in as {email} (password {password})")

    def connect_broker(self) -> dict[str, Any]:
        if self.broker == "paper":
            account = self.client.connect_paper("Demo paper account")
            say(f"Connected paper account #{account['id']} (status {account['status']})")
            return account
        account = self.client.submit_kite(api_key=DEMO_KITE_KEY, api_secret=DEMO_KITE_SECRET, label="Demo Kite (sim)")
        self.sim_root = kite_simulator(self.client.login_url(account["id"]))
        account = self.client.kite_login(account["id"])
        say(
            f"Connected Kite account #{account['id']} through the simulator's login page and /session/"
            f" (status {account['status']}, session until {account.get('token_expires_at')})"
        )
        return account

    @property
    def plan(self) -> dict[str, timedelta]:
        """Each role this run trades and its hold: the fourth needs the Kite simulator's prices."""
        roles = [role for role in SYMBOLS if role != "outage" or self.broker == "kite-sim"]
        return {role: OUTAGE_HOLD if role == "outage" else HOLD for role in roles}

    def plan_times(self) -> tuple[date, datetime]:
        """A BUY ``BUY_LEAD`` from now and every SELL after it on one exchange day: near
        midnight (exchange time) the plan moves to the first seconds of the next day."""
        buy = (datetime.now(EXCHANGE_ZONE) + BUY_LEAD).replace(microsecond=0)
        if (buy + max(self.plan.values())).date() != buy.date():
            buy = datetime.combine(buy.date() + timedelta(days=1), datetime.min.time(), EXCHANGE_ZONE)
            buy += timedelta(seconds=5)
            say(f"The exchange day ends first: buying at {buy:%Y-%m-%d %H:%M:%S} exchange time instead.")
        return buy.date(), buy

    def create_and_start(self, account_id: int) -> None:
        trade_date, buy = self.plan_times()
        buy_at = buy.strftime("%H:%M:%S")
        for role, hold in self.plan.items():
            symbol, sell_at = SYMBOLS[role], (buy + hold).strftime("%H:%M:%S")
            strategy = self.client.create_strategy(
                broker_account=account_id,
                exchange="NSE",
                symbol=symbol,
                quantity=1,
                buy_at=buy_at,
                sell_at=sell_at,
                stop_loss_percent="5",  # far below: the walk will not reach it in a minute
                trade_date=trade_date.isoformat(),
            )
            self.strategies[role] = self.client.start(strategy["id"])
            say(f"  #{strategy['id']} NSE:{symbol} BUY at {buy_at}, SELL at {sell_at} ({EXITS[role]})")
        if "outage" in self.strategies:
            assert self.sim_root is not None  # the fourth runs with the simulator only
            self.outage = BrokerStopExit(
                client=self.client,
                workers=Workers(self.broker_url),
                sim_root=self.sim_root,
                api_key=DEMO_KITE_KEY,
                strategy_id=self.strategies["outage"]["id"],
                log=lambda text: say(f"{self.clock()}  {text}"),
            )
        else:
            say(PAPER_NOTE)

    # --- live -----------------------------------------------------------------------------

    def follow(self, stream: EventStream, *, timeout: float) -> None:
        """Print events and act on them until every strategy is final."""
        instrument = f"NSE:{self.strategies['stoploss']['symbol']}"
        stop_moved = stop_sent = False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            price = None
            for message in self.arrived(stream):  # all of them: the loop's reads must not fall behind
                if message.get("type") == "event":
                    self.print_event(message["event"])
                elif message.get("type") == "price" and message["instrument"] == instrument:
                    price = Decimal(message["price"])
            if not stop_moved and price is not None and self.strategies["stoploss"]["position"] == "BOUGHT":
                stop_moved = self.tighten_stop(price)
            if not stop_sent and self.bought("stop"):
                stop_sent = True
                say(f"{self.clock()}  you press STOP on #{self.strategies['stop']['id']}")
                self.client.stop(self.strategies["stop"]["id"])
            final = self.all_final()
            if self.outage is not None:
                self.outage.step(others_final=self.all_final(but="outage"))
            if final and (self.outage is None or self.outage.done):
                time.sleep(1.5)  # the last events of the exits (E5, S5) land just after the status
                for last in self.arrived(stream, wait=0):
                    if last.get("type") == "event":
                        self.print_event(last["event"])
                return
        raise TimeoutError(f"the strategies were not all final within {timeout:.0f} s")

    @staticmethod
    def arrived(stream: EventStream, *, wait: float = 1) -> list[dict[str, Any]]:
        """The messages received so far, waiting up to ``wait`` seconds for a first one."""
        messages = []
        try:
            messages.append(stream.messages.get(timeout=wait) if wait else stream.messages.get_nowait())
            while True:
                messages.append(stream.messages.get_nowait())
        except queue.Empty:
            return messages

    def tighten_stop(self, price: Decimal) -> bool:
        """Once bought, the stop-loss strategy's stop goes just under the live price (a stop must
        lie below the last price, so not before): the walk's next dip crosses it (U5, then M2).
        False if the price moved through it meanwhile (400): the next price tries again."""
        strategy_id = self.strategies["stoploss"]["id"]
        stop = (price * (1 - STOP_GAP)).quantize(Decimal("0.01"), rounding=ROUND_DOWN)
        try:
            self.client.update_strategy(strategy_id, stop_loss_price=str(stop))
        except ApiError as error:
            if error.status != 400:
                raise
            return False
        say(f"{self.clock()}  you move #{strategy_id}'s stop-loss to {stop}, just under the live price {price}")
        return True

    def bought(self, role: str) -> bool:
        strategy = self.client.strategy(self.strategies[role]["id"])
        self.strategies[role] = strategy
        return bool(strategy["position"] == "BOUGHT")

    def all_final(self, *, but: str = "") -> bool:
        """Every strategy (but the role ``but``, as last read) has ended; reads them afresh."""
        if not but:
            for role, strategy in self.strategies.items():
                self.strategies[role] = self.client.strategy(strategy["id"])
        return all(
            s["status"] in FINAL and s["position"] in ("SOLD", "EXITED_BY_SL", "NONE")
            for role, s in self.strategies.items()
            if role != but
        )

    def workers_back(self) -> None:
        """However the demo ends, workers it stopped consume again."""
        if self.outage is not None and self.outage.workers.restore():
            say("The workers the demo stopped consume again (add_consumer).")

    def clock(self) -> str:
        return f"[{time.monotonic() - self.started:6.1f}s]"

    def print_event(self, event: dict[str, Any]) -> None:
        role = self.roles.get(event.get("strategy_id") or 0, "")
        who = f"#{event.get('strategy_id')} {role:8}" if role else " " * 12
        say(f"{self.clock()}  {who} {event['code']:3} {event['name']:26} {detail(event)}".rstrip())

    # --- the end --------------------------------------------------------------------------

    def summary(self) -> None:
        say()
        say("Timelines (GET /api/v1/strategies/{id}/events/):")
        for role, strategy in self.strategies.items():
            codes = " -> ".join(event["code"] for event in self.client.timeline(strategy["id"]))
            say(f"  #{strategy['id']} {role:8} {strategy['status']}/{strategy['position']}: {codes}")
        say()
        if self.sim_root:
            book = requests.get(f"{self.sim_root}/_sim/orders", params={"api_key": DEMO_KITE_KEY}, timeout=10).json()
            tags = {self.order_tag(event) for s in self.strategies.values() for event in self.client.timeline(s["id"])}
            mine = [order for order in book["data"] if order.get("tag") in tags]
            say(f"The Kite simulator's order book ({len(mine)} orders of this demo, GET /_sim/orders):")
            for order in mine:
                say(
                    f"  {order['order_id']}  {order['transaction_type']:4} {order['quantity']} "
                    f"{order['exchange']}:{order['tradingsymbol']:9} {order['status']:9} "
                    f"avg {order.get('average_price')}  tag {order.get('tag')}"
                )
            return
        say("Orders at the paper broker (from each order's E5 ORDER_FINALIZED on the timelines):")
        for role, strategy in self.strategies.items():
            for event in self.client.timeline(strategy["id"]):
                if event["code"] == "E5":
                    p = event["payload"]
                    say(
                        f"  {p.get('broker_order_id')}  {p['side']:4} {p['quantity']} {p['symbol']:13}"
                        f" {p['status']:9} fill {p.get('fill_price')}  {p['reason']:8} tag {p['tag']}"
                        f"  (#{strategy['id']} {role})"
                    )

    @staticmethod
    def order_tag(event: dict[str, Any]) -> str | None:
        return (event.get("payload") or {}).get("tag")


def detail(event: dict[str, Any]) -> str:
    """What a line of the timeline adds to the event's name."""
    payload = event.get("payload") or {}
    code = event["code"]
    side, reason = payload.get("side"), payload.get("reason")
    order = f"{side} ({reason})" if reason and reason != side else str(side)
    if code == "E5":
        fill = f" at {payload['fill_price']}" if payload.get("fill_price") else ""
        return f"{order} order {payload.get('status')}{fill}"
    if code == "B3":
        return f"{order} order {payload.get('broker_order_id')} accepted"
    if code == "L2":
        return f"{order} order: broker request and response logged"
    if code in ("S5", "E2") and reason:
        return f"reason {reason}"
    return str(event.get("message") or "")


def kite_simulator(login_url: str) -> str:
    """The simulator behind the stack's Kite login page (the API names it), started here on
    that port if nothing answers there; it keeps running after the demo (var/logs/kite_sim.log)."""
    parts = urlsplit(login_url)
    if parts.hostname not in ("127.0.0.1", "localhost"):
        sys.exit(
            f"The running stack sends Kite logins to {parts.scheme}://{parts.netloc}, the real Kite.\n"
            "Stop `make run`, start it again with `make run BROKER=kite-sim`, then run `make demo BROKER=kite-sim`."
        )
    sim_root = f"{parts.scheme}://{parts.netloc}"
    if _sim_answers(sim_root):
        say(f"Using the Kite simulator at {sim_root}")
        return sim_root
    env = read_env(ROOT / ".env")
    ws_port = urlsplit(env.get("KITE_WS_ROOT") or "").port or 8701
    logs = ROOT / (env.get("RUN_DIR") or "var") / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    say(f"Starting the Kite simulator at {sim_root} (log: {logs / 'kite_sim.log'})")
    subprocess.Popen(  # noqa: S603 - our own management command; outlives the demo on purpose
        manage("run_kite_sim", "--host", parts.hostname, "--port", str(parts.port or 8700), "--ws-port", str(ws_port)),
        cwd=ROOT,
        env=env,
        stdout=(logs / "kite_sim.log").open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while not _sim_answers(sim_root):
        if time.monotonic() > deadline:
            sys.exit(f"the Kite simulator did not start; see {logs / 'kite_sim.log'}")
        time.sleep(0.3)
    return sim_root


def _sim_answers(root: str) -> bool:
    try:
        return requests.get(f"{root}/_sim/health", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--broker", choices=["paper", "kite-sim"], help="default: BROKER of the environment or .env, else paper"
    )
    parser.add_argument("--url", help="the web process (default: WEB_HOST and WEB_PORT of .env / the environment)")
    parser.add_argument("--timeout", type=float, default=240, help="seconds to wait for the exits")
    args = parser.parse_args(argv)
    env = read_env(ROOT / ".env")
    broker = args.broker or env.get("BROKER") or "paper"
    if broker not in ("paper", "kite-sim"):
        parser.error(f"BROKER={broker}: paper or kite-sim")
    url = args.url or f"http://{env.get('WEB_HOST') or '127.0.0.1'}:{env.get('WEB_PORT') or '8000'}"
    try:
        health = requests.get(f"{url}/healthz", timeout=5).json()
    except (requests.RequestException, ValueError):
        say(f"Nothing answers at {url}/healthz: start the stack first with `make run` (in another terminal).")
        return 1
    say(f"The stack at {url} is {health.get('status')}.")
    client = AppClient(url)
    demo = Demo(client, broker, broker_url=env.get("REDIS_URL") or "redis://127.0.0.1:6379/0")
    try:
        demo.sign_up()
        account = demo.connect_broker()
        stream = client.events()
        say(f"Listening on /ws/v1/events/. Creating and starting {len(demo.plan)} strategies:")
        demo.create_and_start(account["id"])
        say("Live timeline (each line is one event as the app receives it):")
        try:
            demo.follow(stream, timeout=args.timeout)
        finally:
            stream.close()
            demo.workers_back()
        demo.summary()
    except ApiError as error:
        say(f"The API refused: {error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
