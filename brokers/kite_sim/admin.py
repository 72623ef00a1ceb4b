"""The simulator's control endpoints under ``/_sim/``, unauthenticated because it listens on
loopback and is a test tool: tests arm faults, turn Kite's limits off or on, move prices,
create accounts and read an account's book, the judge of what really happened at the "broker"."""

from __future__ import annotations

import json
from dataclasses import asdict
from decimal import Decimal, InvalidOperation
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from brokers.kite_sim.faults import Fault
from brokers.kite_sim.http import Request, Response

if TYPE_CHECKING:
    from brokers.kite_sim.server import KiteSimulator


class SimAdmin:
    def __init__(self, sim: KiteSimulator) -> None:
        self.sim = sim

    def handle(self, request: Request) -> Response:
        try:
            body = json.loads(request.body or b"{}")
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
            status, data = self._route(request, body)
        except (ValueError, TypeError, KeyError, InvalidOperation) as error:
            status, data = HTTPStatus.BAD_REQUEST, {"error": str(error)}
        return _json(status, data)

    def _route(self, request: Request, body: dict[str, Any]) -> tuple[int, Any]:
        route = (request.method, request.path)
        if route == ("GET", "/_sim/health"):
            return HTTPStatus.OK, {"ok": True, "ticker_clients": self.sim.ticker_client_count}
        if route == ("GET", "/_sim/orders"):
            api_key = request.param("api_key")
            if self.sim.accounts.get(api_key) is None:
                return HTTPStatus.NOT_FOUND, {"error": "unknown api_key"}
            return HTTPStatus.OK, {"data": self.sim.orders(api_key)}
        if route == ("GET", "/_sim/faults"):
            return HTTPStatus.OK, {"data": [fault.as_dict() for fault in self.sim.faults.armed()]}
        if route == ("POST", "/_sim/faults"):
            fault = Fault(**body)
            self.sim.set_fault(fault)
            return HTTPStatus.CREATED, {"data": fault.as_dict()}
        if route == ("DELETE", "/_sim/faults"):
            self.sim.clear_faults()
            return HTTPStatus.OK, {"data": []}
        if route == ("GET", "/_sim/limits"):
            return HTTPStatus.OK, {"data": self.sim.limits.state()}
        if route == ("POST", "/_sim/limits"):
            flags = {name: _flag(value) for name, value in body.items()}
            return HTTPStatus.OK, {"data": self.sim.set_limits(**flags)}
        if route == ("POST", "/_sim/price"):
            symbol = body.get("tradingsymbol") or body["symbol"]
            self.sim.set_price(body.get("exchange", "NSE"), symbol, Decimal(str(body["price"])))
            return HTTPStatus.OK, {"data": {"last_price": self.sim.price(body.get("exchange", "NSE"), symbol)}}
        if route == ("POST", "/_sim/funds"):
            if self.sim.accounts.get(body["api_key"]) is None:
                return HTTPStatus.NOT_FOUND, {"error": "unknown api_key"}
            self.sim.set_funds(body["api_key"], Decimal(str(body["amount"])))
            return HTTPStatus.OK, {"data": True}
        if route == ("POST", "/_sim/suspend"):
            symbol = body.get("tradingsymbol") or body["symbol"]
            self.sim.suspend(body.get("exchange", "NSE"), symbol, suspended=_flag(body.get("suspended", True)))
            return HTTPStatus.OK, {"data": True}
        if route == ("POST", "/_sim/accounts"):
            if "opening_balance" in body:
                body["opening_balance"] = Decimal(str(body["opening_balance"]))
            return HTTPStatus.CREATED, {"data": asdict(self.sim.create_account(**body))}
        if route == ("POST", "/_sim/postback_url"):
            self.sim.set_postback_url(body["api_key"], str(body.get("url") or ""))
            return HTTPStatus.OK, {"data": True}
        if route == ("POST", "/_sim/expire_token"):
            self.sim.expire_token(body["api_key"])
            return HTTPStatus.OK, {"data": True}
        if route == ("POST", "/_sim/ticker/disconnect"):
            self.sim.disconnect_ticker_clients()
            return HTTPStatus.OK, {"data": True}
        return HTTPStatus.NOT_FOUND, {"error": f"no admin route {request.method} {request.path}"}


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("each limit is turned on with true, off with false")
    return value


def _json(status: int, data: Any) -> Response:
    return Response(status, json.dumps(data, default=str).encode())
