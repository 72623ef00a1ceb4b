"""The app's WebSocket: an authenticated user receives the events of their own
account (strategy timelines, alerts) as they are emitted, and live prices of the
instruments their running strategies trade (throttled by the tick consumer)."""

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from market.prices import instruments_watched_by, price_group
from monitoring.pusher import user_group

UNAUTHORIZED_CLOSE_CODE = 4401
# Events after which the set of running strategies, hence of watched prices, may differ.
REWATCH_ON = frozenset({"S1", "S3", "S4", "S5"})


class UserEventsConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=UNAUTHORIZED_CLOSE_CODE)
            return
        self.user_id = user.pk
        self.group = user_group(user.pk)
        self.price_groups: set[str] = set()
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self._watch_prices()  # before accepting: the app's first price is not lost
        await self.accept(subprotocol=self.scope.get("accepted_subprotocol"))

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)
        for group in getattr(self, "price_groups", set()):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def event_message(self, message: dict[str, Any]) -> None:
        if message["event"].get("code") in REWATCH_ON:
            await self._watch_prices()  # first: once the app sees the start, its prices follow
        await self.send_json({"type": "event", "event": message["event"]})

    async def price_update(self, message: dict[str, Any]) -> None:
        await self.send_json(
            {"type": "price", "instrument": message["instrument"], "price": message["price"], "ts": message["ts"]}
        )

    async def _watch_prices(self) -> None:
        """Join the price groups of the user's running strategies' instruments, leave the rest."""
        instruments = await database_sync_to_async(instruments_watched_by)(user_id=self.user_id)
        wanted = {price_group(instrument) for instrument in instruments}
        for group in wanted - self.price_groups:
            await self.channel_layer.group_add(group, self.channel_name)
        for group in self.price_groups - wanted:
            await self.channel_layer.group_discard(group, self.channel_name)
        self.price_groups = wanted
