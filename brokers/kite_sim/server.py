"""``KiteSimulator``: the REST server, the ticker and the clock thread that moves prices, walks
orders through their statuses and publishes ticks, on loopback ports, started in-process by
tests or by ``manage.py run_kite_sim``."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from decimal import Decimal
from typing import Any

import requests

from brokers.kite_sim.accounts import (
    DEFAULT_OPENING_BALANCE,
    DEFAULT_REDIRECT_URL,
    DEMO_ACCESS_TOKEN,
    DEMO_API_KEY,
    DEMO_API_SECRET,
    DEMO_USER_ID,
    Accounts,
    SimAccount,
)
from brokers.kite_sim.admin import SimAdmin
from brokers.kite_sim.book import OrderBook
from brokers.kite_sim.errors import KiteError
from brokers.kite_sim.faults import Fault, FaultKind, Faults
from brokers.kite_sim.http import make_http_server
from brokers.kite_sim.limits import Limits
from brokers.kite_sim.market import MarketData
from brokers.kite_sim.rest import KiteRest
from brokers.kite_sim.ticker import TickerServer
from brokers.simulated_market import DEFAULT_VOLATILITY

logger = logging.getLogger(__name__)

ENGINE_INTERVAL = 0.01  # how often orders move a stage and postbacks go out
REFUSALS_KEPT = 10000  # the latest refused requests, for tests to judge


class KiteSimulator:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        ws_port: int = 0,
        *,
        seed: int = 7,
        tick_interval: float = 0.2,
        stage_delay: float = 0.02,
        volatility: float = DEFAULT_VOLATILITY,
        redirect_url: str = DEFAULT_REDIRECT_URL,
        limits: bool = True,
    ) -> None:
        """``tick_interval``: seconds between tick frames (and random-walk steps);
        ``stage_delay``: seconds an order spends in each status before the next;
        ``volatility``: per-step sigma of the walk, 0 = prices move only by ``set_price``;
        ``redirect_url``: where the login page sends users back (Kite's app redirect URL);
        ``limits``: enforce Kite's limits (``brokers.kite_limits``), or none of them."""
        self.host = host
        self.tick_interval = tick_interval
        self.redirect_url = redirect_url
        self.market = MarketData(seed=seed, volatility=volatility)
        self.accounts = Accounts()
        self.limits = Limits(enabled=limits)
        self.book = OrderBook(self.market, stage_delay=stage_delay, limits=self.limits)
        self.faults = Faults()
        self.admin = SimAdmin(self)
        self.demo_account = self.create_account(
            api_key=DEMO_API_KEY,
            api_secret=DEMO_API_SECRET,
            access_token=DEMO_ACCESS_TOKEN,
            user_id=DEMO_USER_ID,
            user_name="Demo Trader",
            redirect_url=redirect_url,
        )
        self._http = make_http_server(host, port, KiteRest(self).handle)
        self._ticker = TickerServer(
            accounts=self.accounts, market=self.market, faults=self.faults, host=host, port=ws_port
        )
        self._refusals: deque[dict[str, Any]] = deque(maxlen=REFUSALS_KEPT)
        self._refusals_lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        # Postbacks go out on a thread of their own: a slow receiver must not stall the clock.
        self._postbacks: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()

    # --- lifecycle ----------------------------------------------------------------------

    @property
    def api_root(self) -> str:
        return f"http://{self.host}:{self._http.server_address[1]}"

    @property
    def ws_root(self) -> str:
        return f"ws://{self.host}:{self._ticker.port}"

    def start(self) -> KiteSimulator:
        self._threads = [
            threading.Thread(target=self._http.serve_forever, name="kite-sim-rest", daemon=True),
            threading.Thread(target=self._clock, name="kite-sim-clock", daemon=True),
            threading.Thread(target=self._post_postbacks, name="kite-sim-postback", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        self._ticker.start()
        logger.info("kite_sim started: api_root=%s ws_root=%s", self.api_root, self.ws_root)
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._http.shutdown()
        self._http.close_all()
        self._http.server_close()
        self._ticker.stop()
        for thread in self._threads:
            thread.join(timeout=5)
        logger.info("kite_sim stopped")

    def __enter__(self) -> KiteSimulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- the test API -------------------------------------------------------------------

    def create_account(
        self,
        *,
        api_key: str | None = None,
        api_secret: str | None = None,
        access_token: str | None = None,
        user_id: str | None = None,
        user_name: str = "Sim Trader",
        opening_balance: Decimal = DEFAULT_OPENING_BALANCE,
        redirect_url: str | None = None,
        postback_url: str = "",
    ) -> SimAccount:
        """A fresh Kite user with its own order book, already logged in (``access_token`` works);
        ``postback_url``: where its order updates are POSTed, as Kite does for an app that sets one."""
        state = self.accounts.create(
            api_key=api_key,
            api_secret=api_secret,
            access_token=access_token,
            user_id=user_id,
            user_name=user_name,
            opening_balance=opening_balance,
            redirect_url=redirect_url or self.redirect_url,
            postback_url=postback_url,
        )
        return state.public()

    def set_postback_url(self, api_key: str, url: str) -> None:
        """The app's postback URL ("" for none): its order updates go there from now on."""
        state = self.accounts.get(api_key)
        if state is None:
            raise KeyError(api_key)
        state.postback_url = url

    def account(self, api_key: str) -> SimAccount:
        """The account's current credentials (the access token changes after expiry and a new login)."""
        state = self.accounts.get(api_key)
        if state is None:
            raise KeyError(api_key)
        return state.public()

    def issue_request_token(self, api_key: str) -> str:
        """What the login page's redirect carries, without the HTTP round trip."""
        return self.accounts.issue_request_token(api_key)

    def expire_token(self, api_key: str) -> None:
        """The access token stops working for REST and the ticker until the user logs in again."""
        self.accounts.expire(api_key)

    def price(self, exchange: str, symbol: str) -> Decimal:
        instrument = self._instrument(exchange, symbol)
        return self.market.price(instrument)

    def set_price(self, exchange: str, symbol: str, price: Decimal | float | str) -> None:
        """Move an instrument; open LIMIT / trigger orders react on the next engine pass."""
        self.market.set_price(self._instrument(exchange, symbol), float(price))

    def set_funds(self, api_key: str, amount: Decimal | float | str) -> None:
        """The account's opening balance: its equity margins (``/user/margins``) follow from it."""
        state = self.accounts.get(api_key)
        if state is None:
            raise KeyError(api_key)
        state.opening_balance = Decimal(str(amount))

    def suspend(self, exchange: str, symbol: str, *, suspended: bool = True) -> None:
        """Suspend an instrument from trading (or lift it): quoted nothing, orders refused."""
        self.market.suspend(self._instrument(exchange, symbol), suspended=suspended)

    def set_fault(self, fault: Fault | FaultKind | str, **options: Any) -> Fault:
        """Arm a fault: ``set_fault("rate_limit", times=2, api_key=account.api_key)``."""
        if not isinstance(fault, Fault):
            fault = Fault(kind=FaultKind(fault), **options)
        if fault.kind is FaultKind.FEED_DISCONNECT:
            self.disconnect_ticker_clients()
        self.faults.add(fault)
        logger.info("kite_sim fault armed: %s", fault.as_dict())
        return fault

    def clear_faults(self) -> None:
        self.faults.clear()

    def record_refusal(self, api_key: str, endpoint: str, tag: str | None, error: KiteError) -> None:
        with self._refusals_lock:
            self._refusals.append(
                {"api_key": api_key, "endpoint": endpoint, "tag": tag, "status": error.status, "at": time.time()}
            )

    def refusals(self, api_key: str) -> list[dict[str, Any]]:
        """The account's requests a limit refused (429 or the day's cap), with the order's tag
        for a placement: the judge of who met a 429."""
        with self._refusals_lock:
            return [dict(r) for r in self._refusals if r["api_key"] == api_key]

    def set_limits(self, **flags: bool) -> dict[str, bool]:
        """Turn Kite's limits on or off by name (``set_limits(rate=False)``); returns them all."""
        state = self.limits.set(**flags)
        logger.info("kite_sim limits: %s", state)
        return state

    def orders(self, api_key: str) -> list[dict[str, Any]]:
        """The account's order book as Kite would list it: the judge in execution tests."""
        return self.book.orders(api_key)

    def placed_at(self, api_key: str) -> dict[str, float]:
        """When each of the account's orders (by tag) reached the book: a latency's end."""
        return self.book.placed_at(api_key)

    def disconnect_ticker_clients(self) -> None:
        self._ticker.disconnect_all()

    @property
    def ticker_client_count(self) -> int:
        return self._ticker.client_count

    def _instrument(self, exchange: str, symbol: str) -> Any:
        instrument = self.market.instrument(exchange, symbol)
        if instrument is None:
            raise KeyError(f"{exchange}:{symbol}")
        return instrument

    # --- the clock ----------------------------------------------------------------------

    def _clock(self) -> None:
        next_tick = time.monotonic()
        while not self._stopping.wait(ENGINE_INTERVAL):
            try:
                self.book.advance()
                self._send_postbacks()
                if time.monotonic() >= next_tick:
                    next_tick = time.monotonic() + self.tick_interval
                    moving = {i.instrument_token: i for i in self._ticker.subscribed_instruments()}
                    moving.update({i.instrument_token: i for i in self.book.live_instruments()})
                    self.market.step(list(moving.values()))
                    self._ticker.publish()
            except Exception:
                logger.exception("kite_sim clock: unexpected error")

    def _send_postbacks(self) -> None:
        while True:
            try:
                api_key, order = self.book.postbacks.get_nowait()
            except queue.Empty:
                return
            self._ticker.send_order_update(api_key, order)
            state = self.accounts.get(api_key)
            if state is not None and state.postback_url:
                self._postbacks.put((state.postback_url, order))

    def _post_postbacks(self) -> None:
        """POST each update as JSON to its app's postback URL, as Kite does (the payload carries
        its checksum); a receiver that fails is logged, not retried."""
        while not self._stopping.is_set():
            try:
                url, order = self._postbacks.get(timeout=0.1)
            except queue.Empty:
                continue
            try:
                requests.post(url, json=order, timeout=5)
            except requests.RequestException as error:
                logger.warning("kite_sim postback to %s failed: %s", url, error)
