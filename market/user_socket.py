"""The app's WebSocket: an authenticated user receives the events of their own
account (strategy timelines, alerts) as they are emitted, and live prices of the
instruments their running strategies trade (throttled by the tick consumer), each with
the unrealized P&L of the user's open positions in it. The socket
is held to a request's rules: it closes when its access token expires unless the app
renews it in-band, and on logout or deactivation (a ``session.ended`` group message)."""

import asyncio
import json
import time
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from algotrader.websocket_auth import socket_session
from market.live_pnl import OpenPosition, open_positions_of, positions_priced
from market.prices import instruments_watched_by, price_group
from monitoring.pusher import user_group

UNAUTHORIZED_CLOSE_CODE = 4401
# Events after which the set of running strategies, hence of watched prices, may differ.
REWATCH_ON = frozenset({"S1", "S3", "S4", "S5"})
# Events after which the user's open positions may differ: an order settled (its fill), a
# protective stop filled, a strategy started or ended.
REPRICE_ON = REWATCH_ON | {"E5", "P3"}
# What the app sends is a small control message; anything larger is refused unread.
MAX_FRAME_BYTES = 8192


class UserEventsConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=UNAUTHORIZED_CLOSE_CODE)
            return
        self.user_id = user.pk
        self.family = self.scope.get("token_family")
        self.group = user_group(user.pk)
        self.price_groups: set[str] = set()
        self.positions: dict[str, list[OpenPosition]] = {}
        self.expiry: asyncio.TimerHandle | None = None
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self._watch_prices()  # before accepting: the app's first price is not lost
        await self._load_positions()
        await self.accept(subprotocol=self.scope.get("accepted_subprotocol"))
        self._expire_at(self.scope.get("token_exp", time.time()))

    async def disconnect(self, code: int) -> None:
        if getattr(self, "expiry", None) is not None:
            self.expiry.cancel()  # type: ignore[union-attr]
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)
        for group in getattr(self, "price_groups", set()):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any) -> None:
        """Answer a frame that is not a small JSON object with an error message; never drop
        the connection over it (nor log an ERROR)."""
        frame = text_data if text_data is not None else (bytes_data or b"").decode("utf-8", "replace")
        if len(frame.encode()) > MAX_FRAME_BYTES:
            await self._error("frame_too_large", f"Frames are at most {MAX_FRAME_BYTES} bytes.")
            return
        try:
            content = json.loads(frame)
        except ValueError:
            await self._error("malformed_frame", "Frames are JSON objects.")
            return
        if not isinstance(content, dict):
            await self._error("malformed_frame", "Frames are JSON objects.")
            return
        await self.receive_json(content)

    async def receive_json(self, content: dict[str, Any], **kwargs: Any) -> None:
        if content.get("type") == "auth" and isinstance(content.get("token"), str):
            await self._renew(content["token"])
            return
        await self._error("unknown_type", 'The app may send {"type": "auth", "token": "<access>"}.')

    async def _renew(self, token: str) -> None:
        """A fresh access token of the same user keeps the socket open past the old one's expiry."""
        user, session = await database_sync_to_async(socket_session)(token)
        if not user.is_authenticated or user.pk != self.user_id:
            await self._error("token_invalid", "The token is invalid, expired, or another user's.")
            return
        self.family = session.get("token_family")
        self._expire_at(session["token_exp"])
        await self.send_json({"type": "auth.ok", "expires_at": session["token_exp"]})

    def _expire_at(self, when: float) -> None:
        if self.expiry is not None:
            self.expiry.cancel()
        loop = asyncio.get_running_loop()
        self.expiry = loop.call_later(max(0.0, when - time.time()), lambda: loop.create_task(self._expired()))

    async def _expired(self) -> None:
        await self.send_json({"type": "session.ended", "reason": "token_expired"})
        await self.close(code=UNAUTHORIZED_CLOSE_CODE)

    async def session_ended(self, message: dict[str, Any]) -> None:
        """Logout (of this login, ``family``) or deactivation (every login, no family)."""
        family = message.get("family")
        if family is not None and family != self.family:
            return
        await self.send_json({"type": "session.ended", "reason": message.get("reason", "logged_out")})
        await self.close(code=UNAUTHORIZED_CLOSE_CODE)

    async def event_message(self, message: dict[str, Any]) -> None:
        code = message["event"].get("code")
        if code in REWATCH_ON:
            await self._watch_prices()  # first: once the app sees the start, its prices follow
        if code in REPRICE_ON:
            await self._load_positions()
        await self.send_json({"type": "event", "event": message["event"]})

    async def price_update(self, message: dict[str, Any]) -> None:
        """The price, and the unrealized P&L at it of the user's positions in the instrument,
        from the figures held since the last fill: nothing is read per tick."""
        push = {"type": "price", "instrument": message["instrument"], "price": message["price"], "ts": message["ts"]}
        positions = self.positions.get(message["instrument"])
        if positions:
            push["positions"] = positions_priced(positions, message["price"])
        await self.send_json(push)

    async def _error(self, code: str, message: str) -> None:
        await self.send_json({"type": "error", "code": code, "message": message})

    async def _load_positions(self) -> None:
        self.positions = await database_sync_to_async(open_positions_of)(user_id=self.user_id)

    async def _watch_prices(self) -> None:
        """Join the price groups of the user's running strategies' instruments, leave the rest."""
        instruments = await database_sync_to_async(instruments_watched_by)(user_id=self.user_id)
        wanted = {price_group(instrument) for instrument in instruments}
        for group in wanted - self.price_groups:
            await self.channel_layer.group_add(group, self.channel_name)
        for group in self.price_groups - wanted:
            await self.channel_layer.group_discard(group, self.channel_name)
        self.price_groups = wanted
