"""Kite's ticker WebSocket on ``websockets``' sync server: JSON subscribe and mode requests in,
binary tick frames out exactly as Kite lays them out (see ``brokers.adapters.kite_packets``),
a 1-byte heartbeat after a quiet second, and the account's order updates as JSON text."""

from __future__ import annotations

import json
import logging
import struct
import threading
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.sync.server import Server, ServerConnection, serve

from brokers.adapters.base import Instrument
from brokers.instruments import instruments_by_token
from brokers.kite_sim.accounts import Accounts, AccountState
from brokers.kite_sim.faults import Faults
from brokers.kite_sim.market import MarketData, Quote

logger = logging.getLogger(__name__)

MODE_LTP = "ltp"
MODE_QUOTE = "quote"
MODE_FULL = "full"
MODES = frozenset({MODE_LTP, MODE_QUOTE, MODE_FULL})
MAX_TOKENS_PER_CONNECTION = 3000
MAX_CONNECTIONS_PER_API_KEY = 3
HEARTBEAT = b"\x00"
HEARTBEAT_AFTER = 1.0  # seconds without any frame


def paise(price: float) -> int:
    """Prices go out in paise: only NSE equities and indices are simulated, so no other divisor occurs."""
    return round(price * 100)


def encode_packet(quote: Quote, mode: str) -> bytes:
    token = quote.instrument.instrument_token
    ltp = paise(quote.last_price)
    if mode == MODE_LTP:
        return struct.pack(">II", token, ltp)
    if quote.instrument.segment == "INDICES":
        change = paise(quote.last_price - quote.close)
        packet = struct.pack(
            ">IIIIIIi", token, ltp, paise(quote.high), paise(quote.low), paise(quote.open), paise(quote.close), change
        )
        if mode == MODE_FULL:
            packet += struct.pack(">I", int(quote.timestamp))
        return packet
    packet = struct.pack(
        ">IIIIIIIIIII",
        token,
        ltp,
        quote.last_quantity,
        paise(quote.average_price),
        quote.volume,
        quote.buy_quantity,
        quote.sell_quantity,
        paise(quote.open),
        paise(quote.high),
        paise(quote.low),
        paise(quote.close),
    )
    if mode == MODE_QUOTE:
        return packet
    # last trade time, OI, OI day high, OI day low (no OI for equities), exchange timestamp
    packet += struct.pack(">IIIII", int(quote.last_trade_time), 0, 0, 0, int(quote.timestamp))
    for level in (*quote.bids, *quote.asks):
        packet += struct.pack(">IIHxx", level.quantity, paise(level.price), level.orders)
    return packet


def encode_frame(packets: list[bytes]) -> bytes:
    return struct.pack(">H", len(packets)) + b"".join(struct.pack(">H", len(p)) + p for p in packets)


@dataclass
class _Client:
    connection: ServerConnection
    account: AccountState
    modes: dict[int, str] = field(default_factory=dict)  # instrument token -> mode
    last_sent: float = field(default_factory=time.monotonic)


class TickerServer:
    def __init__(self, *, accounts: Accounts, market: MarketData, faults: Faults, host: str, port: int) -> None:
        self._accounts = accounts
        self._market = market
        self._faults = faults
        self._clients: dict[ServerConnection, _Client] = {}
        # Handshakes accepted but not yet handled; weak, so one that fails later is forgotten.
        self._authenticated: weakref.WeakKeyDictionary[ServerConnection, AccountState] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self._server: Server = serve(
            self._handle, host, port, process_request=self._authenticate, compression=None, logger=logger
        )
        self._thread = threading.Thread(target=self._server.serve_forever, name="kite-sim-ticker", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.socket.getsockname()[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self.disconnect_all()
        self._thread.join(timeout=5)

    @property
    def client_count(self) -> int:
        with self._lock:
            return len(self._clients)

    def subscribed_instruments(self) -> list[Instrument]:
        by_token = instruments_by_token()
        with self._lock:
            tokens = {token for client in self._clients.values() for token in client.modes}
        return [by_token[t] for t in tokens if t in by_token]

    # --- connections --------------------------------------------------------------------

    def _authenticate(self, connection: ServerConnection, request: Request) -> Response | None:
        query = parse_qs(urlsplit(request.path).query)
        api_key = (query.get("api_key") or [""])[0]
        access_token = (query.get("access_token") or [""])[0]
        account = self._accounts.check_token(api_key, access_token)
        if account is None:
            # Kite refuses the upgrade itself: the client sees a 403 handshake failure.
            return connection.respond(HTTPStatus.FORBIDDEN, "Invalid `api_key` or `access_token`.\n")
        with self._lock:
            open_connections = sum(
                1
                for other in (*(c.account for c in self._clients.values()), *self._authenticated.values())
                if other.api_key == api_key
            )
            if open_connections >= MAX_CONNECTIONS_PER_API_KEY:
                # Kite allows three ticker connections per api_key and refuses a fourth.
                return connection.respond(HTTPStatus.TOO_MANY_REQUESTS, "Too many connections.\n")
            self._authenticated[connection] = account
        return None

    def _handle(self, connection: ServerConnection) -> None:
        with self._lock:
            account = self._authenticated.pop(connection)
            client = _Client(connection, account)
            self._clients[connection] = client
        logger.info("kite_sim ticker: %s connected", account.user_id)
        try:
            for message in connection:
                if isinstance(message, str):
                    self._on_text(client, message)
        except ConnectionClosed:
            pass
        finally:
            with self._lock:
                self._clients.pop(connection, None)
            logger.info("kite_sim ticker: %s disconnected", account.user_id)

    def _on_text(self, client: _Client, message: str) -> None:
        try:
            request = json.loads(message)
            action, value = request["a"], request["v"]
        except (ValueError, KeyError, TypeError):
            self._send(client, json.dumps({"type": "error", "data": "Invalid message"}))
            return
        with self._lock:
            if action == "subscribe" and _tokens(value):
                overflow = False
                for token in _tokens(value):
                    if token not in client.modes and len(client.modes) >= MAX_TOKENS_PER_CONNECTION:
                        overflow = True  # refused: the connection streams only the first 3,000
                        continue
                    client.modes.setdefault(token, MODE_QUOTE)  # Kite's default mode is quote
            elif action == "unsubscribe" and _tokens(value):
                for token in _tokens(value):
                    client.modes.pop(token, None)
                overflow = False
            elif action == "mode" and isinstance(value, list) and len(value) == 2 and value[0] in MODES:
                for token in _tokens(value[1]):
                    if token in client.modes:
                        client.modes[token] = value[0]
                overflow = False
            else:
                overflow = None
        if overflow is None:
            self._send(client, json.dumps({"type": "error", "data": f"Invalid message: {message[:100]}"}))
        elif overflow:
            self._send(client, json.dumps({"type": "error", "data": "Maximum 3000 instruments per connection"}))

    def disconnect_all(self) -> None:
        """Drop every connection as a network failure would (no close frame)."""
        with self._lock:
            clients = list(self._clients.values())
        for client in clients:
            client.connection.close_socket()

    # --- publishing (from the simulator's clock thread) ---------------------------------

    def publish(self) -> None:
        """Send one frame per client with all its subscribed instruments, or a heartbeat."""
        if self._faults.feed_silent:
            return
        with self._lock:
            clients = [(client, dict(client.modes)) for client in self._clients.values()]
        quotes: dict[int, Quote] = {}
        by_token = instruments_by_token()
        for client, modes in clients:
            packets = []
            for token, mode in modes.items():
                instrument = by_token.get(token)
                if instrument is None:
                    continue  # Kite streams nothing for tokens it does not know
                if token not in quotes:
                    quotes[token] = self._market.quote(instrument)
                packets.append(encode_packet(quotes[token], mode))
            if packets:
                self._send(client, encode_frame(packets))
            elif time.monotonic() - client.last_sent >= HEARTBEAT_AFTER:
                self._send(client, HEARTBEAT)

    def send_order_update(self, api_key: str, order: dict[str, Any]) -> None:
        if self._faults.feed_silent:
            return
        with self._lock:
            clients = [c for c in self._clients.values() if c.account.api_key == api_key]
        text = json.dumps({"type": "order", "id": "", "data": order})
        for client in clients:
            self._send(client, text)

    def _send(self, client: _Client, message: str | bytes) -> None:
        try:
            client.connection.send(message)
            client.last_sent = time.monotonic()
        except (ConnectionClosed, OSError):
            pass  # its handler thread notices and forgets the client


def _tokens(value: object) -> list[int]:
    if not isinstance(value, Iterable) or isinstance(value, str | bytes):
        return []
    return [v for v in value if isinstance(v, int) and not isinstance(v, bool)]
