from market.consumers import TICKS_CHANNEL, TickConsumer

channel_routes = {TICKS_CHANNEL: TickConsumer.as_asgi()}
