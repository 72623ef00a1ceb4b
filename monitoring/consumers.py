"""The app's WebSocket: an authenticated user receives the events of their own
account (strategy timelines, alerts) as they are emitted."""

from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from monitoring.services import user_group

UNAUTHORIZED_CLOSE_CODE = 4401


class UserEventsConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=UNAUTHORIZED_CLOSE_CODE)
            return
        self.group = user_group(user.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept(subprotocol=self.scope.get("accepted_subprotocol"))

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def event_message(self, message: dict[str, Any]) -> None:
        await self.send_json({"type": "event", "event": message["event"]})
