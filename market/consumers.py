"""The tick consumer, run by ``manage.py runworker ticks``: each message is one
frame's batch of ticks from the market listener; the last price of each symbol
goes to ``price:{symbol}``."""

from typing import Any

from channels.consumer import SyncConsumer

from algotrader import redis_keys
from algotrader.redis_client import get_redis

TICKS_CHANNEL = "ticks"


class TickConsumer(SyncConsumer):
    def ticks_batch(self, message: dict[str, Any]) -> None:
        ticks = message.get("ticks") or []
        if not ticks:
            return
        pipe = get_redis().pipeline(transaction=False)
        for tick in ticks:
            key = redis_keys.price(tick["exchange"], tick["symbol"])
            pipe.hset(key, mapping={"price": tick["price"], "ts": tick["ts"]})
        pipe.execute()
