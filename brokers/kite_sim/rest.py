"""Kite Connect v3's REST API, served by ``brokers.kite_sim.http``: the
``X-Kite-Version: 3`` and ``Authorization: token api_key:access_token`` headers, Kite's
routes and their faults, the auto-approving login page and the simulator's own
``/_sim/...`` admin endpoints (JSON, unauthenticated, loopback only)."""

from __future__ import annotations

import gzip
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode

from brokers.adapters.base import Instrument
from brokers.instruments import find_instrument, instruments_by_token, instruments_to_csv, load_instruments
from brokers.kite_sim.accounts import EXCHANGES
from brokers.kite_sim.clock import kite_time
from brokers.kite_sim.errors import KiteError, general_error, input_error
from brokers.kite_sim.faults import SERVER_ERROR_TYPES, Fault, FaultKind
from brokers.kite_sim.http import Request, Response, failure, success
from brokers.kite_sim.market import circuit_band

if TYPE_CHECKING:
    from brokers.kite_sim.server import KiteSimulator

logger = logging.getLogger(__name__)

# Faults answered instead of processing the request.
PRE_FAULTS = frozenset(
    {
        FaultKind.RATE_LIMIT,
        FaultKind.SERVER_ERROR,
        FaultKind.TOKEN_EXPIRED,
        FaultKind.ERROR,
        FaultKind.MARGIN_EXCEPTION,
        FaultKind.DELAY,
    }
)


Handler = Callable[["KiteRest", Request], Any]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    endpoint: str
    handler: Handler
    authenticated: bool = True


class KiteRest:
    """The Kite routes; one instance per simulator, called from the HTTP server's threads."""

    def __init__(self, sim: KiteSimulator) -> None:
        self.sim = sim
        self.routes: list[Route] = [
            Route("POST", re.compile(r"/session/token"), "generate_session", KiteRest.session_token, False),
            Route("DELETE", re.compile(r"/session/token"), "invalidate_access_token", KiteRest.session_delete, False),
            Route("GET", re.compile(r"/user/profile"), "profile", KiteRest.profile),
            Route("GET", re.compile(r"/user/margins(?:/(?P<segment>\w+))?"), "margins", KiteRest.margins),
            Route("GET", re.compile(r"/orders"), "orders", KiteRest.orders),
            Route("GET", re.compile(r"/orders/(?P<order_id>\w+)/trades"), "order_trades", KiteRest.order_trades),
            Route("GET", re.compile(r"/orders/(?P<order_id>\d+)"), "order_history", KiteRest.order_history),
            Route("POST", re.compile(r"/orders/(?P<variety>[a-z]+)"), "place_order", KiteRest.place_order),
            Route("PUT", re.compile(r"/orders/(?P<variety>[a-z]+)/(?P<order_id>\w+)"), "modify_order", KiteRest.modify),
            Route(
                "DELETE", re.compile(r"/orders/(?P<variety>[a-z]+)/(?P<order_id>\w+)"), "cancel_order", KiteRest.cancel
            ),
            Route("GET", re.compile(r"/trades"), "trades", KiteRest.trades),
            Route("GET", re.compile(r"/portfolio/positions"), "positions", KiteRest.positions),
            Route("GET", re.compile(r"/quote"), "quote", KiteRest.quote),
            Route("GET", re.compile(r"/quote/ohlc"), "ohlc", KiteRest.ohlc),
            Route("GET", re.compile(r"/quote/ltp"), "ltp", KiteRest.ltp),
            # Kite serves the instrument dump without a session; so does the simulator.
            Route(
                "GET", re.compile(r"/instruments(?:/(?P<exchange>\w+))?"), "instruments", KiteRest.instruments, False
            ),
        ]

    # --- dispatch -----------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        if request.path.startswith("/_sim/"):
            return self.sim.admin.handle(request)
        if request.path == "/connect/login":
            return self.login_page(request)
        route, allowed = self._match(request)
        if route is None:
            status = HTTPStatus.METHOD_NOT_ALLOWED if allowed else HTTPStatus.NOT_FOUND
            return failure(general_error("Route not found" if not allowed else "Method not allowed", status))
        try:
            if request.headers.get("x-kite-version") != "3":
                raise input_error("Invalid or missing `X-Kite-Version` header: this API is version 3.")
            fault = self.sim.faults.take(route.endpoint, request.api_key_hint, PRE_FAULTS)
            if fault is not None:
                early = self._pre_fault(fault)
                if early is not None:
                    return early
            if route.authenticated:
                request.account = self.sim.accounts.authenticate(request.headers.get("authorization"))
                try:
                    self.sim.limits.take(request.account.api_key, route.endpoint)
                except KiteError as refused:
                    self.sim.record_refusal(request.account.api_key, route.endpoint, request.form.get("tag"), refused)
                    raise
            result = route.handler(self, request)
            response = result if isinstance(result, Response) else success(result)
        except KiteError as error:
            return failure(error)
        drop = self.sim.faults.take(route.endpoint, request.api_key_hint, frozenset({FaultKind.DROP_RESPONSE}))
        if drop is not None:
            logger.info("kite_sim fault: dropping the response of %s %s", request.method, request.path)
            response.drop = True
        return response

    def _match(self, request: Request) -> tuple[Route | None, bool]:
        path_matched = False
        for route in self.routes:
            match = route.pattern.fullmatch(request.path)
            if match is None:
                continue
            path_matched = True
            if route.method == request.method:
                request.args = {k: v for k, v in match.groupdict().items() if v is not None}
                return route, True
        return None, path_matched

    def _pre_fault(self, fault: Fault) -> Response | None:
        logger.info("kite_sim fault: %s", fault.kind)
        if fault.kind is FaultKind.DELAY:
            time.sleep(fault.seconds)
            return None
        if fault.kind is FaultKind.RATE_LIMIT:
            return failure(KiteError("NetworkException", fault.message or "Too many requests", 429))
        if fault.kind is FaultKind.TOKEN_EXPIRED:
            message = fault.message or "Incorrect `api_key` or `access_token`."
            return failure(KiteError("TokenException", message, HTTPStatus.FORBIDDEN))
        if fault.kind is FaultKind.MARGIN_EXCEPTION:
            message = fault.message or "Insufficient funds. Required margin is more than the available margin."
            return failure(KiteError("MarginException", message, HTTPStatus.BAD_REQUEST))
        if fault.kind is FaultKind.SERVER_ERROR:
            status = fault.status or HTTPStatus.SERVICE_UNAVAILABLE
            error_type = fault.error_type or SERVER_ERROR_TYPES.get(status, "GeneralException")
            return failure(KiteError(error_type, fault.message or "Service unavailable, please try again.", status))
        return failure(
            KiteError(
                fault.error_type or "GeneralException",
                fault.message or "Something went wrong.",
                fault.status or HTTPStatus.BAD_REQUEST,
            )
        )

    # --- session ------------------------------------------------------------------------

    def login_page(self, request: Request) -> Response:
        """Kite's login page, auto-approved: redirect straight back with a request token."""
        api_key = request.param("api_key")
        account = self.sim.accounts.get(api_key)
        if account is None:
            return failure(input_error("Invalid `api_key`."))
        token = self.sim.accounts.issue_request_token(api_key)
        query = {"action": "login", "type": "login", "status": "success", "request_token": token}
        extra = parse_qs(request.param("redirect_params"))
        location = f"{account.redirect_url}?{urlencode({**{k: v[0] for k, v in extra.items()}, **query})}"
        return Response(HTTPStatus.FOUND, b"", content_type="text/html", headers={"Location": location})

    def session_token(self, request: Request) -> dict[str, object]:
        for name in ("api_key", "request_token", "checksum"):
            if not request.form.get(name):
                raise input_error(f"Missing `{name}`.")
        return self.sim.accounts.exchange_request_token(
            api_key=request.form["api_key"],
            request_token=request.form["request_token"],
            checksum=request.form["checksum"],
        )

    def session_delete(self, request: Request) -> bool:
        self.sim.accounts.invalidate(api_key=request.param("api_key"), access_token=request.param("access_token"))
        return True

    # --- user ---------------------------------------------------------------------------

    def profile(self, request: Request) -> dict[str, object]:
        assert request.account is not None
        return request.account.profile()

    def margins(self, request: Request) -> dict[str, Any]:
        assert request.account is not None
        margins = self.sim.book.margins(request.account)
        segment = request.args.get("segment")
        if segment is None:
            return margins
        if segment not in margins:
            raise input_error("Invalid segment.")
        return margins[segment]  # type: ignore[no-any-return]

    # --- orders -------------------------------------------------------------------------

    def place_order(self, request: Request) -> dict[str, str]:
        assert request.account is not None
        api_key = request.account.api_key
        fault = self.sim.faults.take(
            "place_order", api_key, frozenset({FaultKind.MARGIN, FaultKind.REJECT, FaultKind.PARTIAL_FILL})
        )
        rejection = None
        if fault is not None and fault.kind is FaultKind.REJECT:
            rejection = fault.message or "RMS:Rule: Check circuit limit including square off order exceeds"
        partial = None
        if fault is not None and fault.kind is FaultKind.PARTIAL_FILL:
            partial = (fault.quantity, fault.seconds)
        order = self.sim.book.place(
            request.account,
            request.args["variety"],
            request.form,
            rejection=rejection,
            margin_shortfall=fault is not None and fault.kind is FaultKind.MARGIN,
            partial_fill=partial,
        )
        return {"order_id": order.order_id}

    def modify(self, request: Request) -> dict[str, str]:
        assert request.account is not None
        order = self.sim.book.modify(request.account, request.args["variety"], request.args["order_id"], request.form)
        return {"order_id": order.order_id}

    def cancel(self, request: Request) -> dict[str, str]:
        assert request.account is not None
        order = self.sim.book.cancel(request.account, request.args["variety"], request.args["order_id"])
        return {"order_id": order.order_id}

    def orders(self, request: Request) -> list[dict[str, Any]]:
        assert request.account is not None
        return self.sim.book.orders(request.account.api_key)

    def order_history(self, request: Request) -> list[dict[str, Any]]:
        assert request.account is not None
        return self.sim.book.history(request.account, request.args["order_id"])

    def trades(self, request: Request) -> list[dict[str, Any]]:
        assert request.account is not None
        return self.sim.book.trades(request.account.api_key)

    def order_trades(self, request: Request) -> list[dict[str, Any]]:
        assert request.account is not None
        return self.sim.book.order_trades(request.account, request.args["order_id"])

    def positions(self, request: Request) -> dict[str, list[dict[str, Any]]]:
        assert request.account is not None
        rows = self.sim.book.positions(request.account.api_key)
        return {"net": rows, "day": [dict(row) for row in rows]}

    # --- market data --------------------------------------------------------------------

    def _requested(self, request: Request) -> list[tuple[str, Instrument]]:
        found = []
        for key in request.query.get("i", []):
            instrument = (
                instruments_by_token().get(int(key)) if key.isdigit() else find_instrument(*key.partition(":")[::2])
            )
            # Kite leaves unknown (and suspended) instruments out of the answer.
            if instrument is not None and not self.sim.market.suspended(instrument):
                found.append((key, instrument))
        return found

    def ltp(self, request: Request) -> dict[str, Any]:
        return {
            key: {"instrument_token": i.instrument_token, "last_price": float(self.sim.market.price(i))}
            for key, i in self._requested(request)
        }

    def ohlc(self, request: Request) -> dict[str, Any]:
        result = {}
        for key, instrument in self._requested(request):
            quote = self.sim.market.quote(instrument)
            result[key] = {
                "instrument_token": instrument.instrument_token,
                "last_price": quote.last_price,
                "ohlc": {"open": quote.open, "high": quote.high, "low": quote.low, "close": quote.close},
            }
        return result

    def quote(self, request: Request) -> dict[str, Any]:
        result = {}
        for key, instrument in self._requested(request):
            q = self.sim.market.quote(instrument)
            result[key] = {
                "instrument_token": instrument.instrument_token,
                "timestamp": kite_time(q.timestamp),
                "last_trade_time": kite_time(q.last_trade_time),
                "last_price": q.last_price,
                "last_quantity": q.last_quantity,
                "buy_quantity": q.buy_quantity,
                "sell_quantity": q.sell_quantity,
                "volume": q.volume,
                "average_price": q.average_price,
                "oi": 0,
                "oi_day_high": 0,
                "oi_day_low": 0,
                "net_change": round(q.last_price - q.close, 2),
                "lower_circuit_limit": float(circuit_band(q.close)[0]),
                "upper_circuit_limit": float(circuit_band(q.close)[1]),
                "ohlc": {"open": q.open, "high": q.high, "low": q.low, "close": q.close},
                "depth": {
                    "buy": [{"price": d.price, "quantity": d.quantity, "orders": d.orders} for d in q.bids],
                    "sell": [{"price": d.price, "quantity": d.quantity, "orders": d.orders} for d in q.asks],
                },
            }
        return result

    def instruments(self, request: Request) -> Response:
        exchange = request.args.get("exchange")
        if exchange is not None and exchange not in EXCHANGES:
            raise input_error("Invalid `exchange`.")
        body = instruments_to_csv(i for i in load_instruments() if exchange is None or i.exchange == exchange).encode()
        # Kite sends the dump gzipped to a client that accepts it (requests does, and inflates it).
        if "gzip" in request.headers.get("accept-encoding", ""):
            gzipped = gzip.compress(body)
            return Response(HTTPStatus.OK, gzipped, content_type="text/csv", headers={"Content-Encoding": "gzip"})
        return Response(HTTPStatus.OK, body, content_type="text/csv")
