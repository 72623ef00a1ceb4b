from market.consumers import TickConsumer
from market.ticks import TICKS_CHANNEL

channel_routes = {TICKS_CHANNEL: TickConsumer.as_asgi()}
