"""An order's inbox of the broker's pushed updates: a short-lived Redis list per order that
``updates`` fills and the order's follow (``fills.order_follow``) pops instead of sleeping
between polls, and whether the account's update stream is up at all."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings

from algotrader import redis_keys
from algotrader.redis_client import get_redis
from brokers.adapters.base import BrokerOrder, BrokerOrderStatus, Side

logger = logging.getLogger(__name__)


def order_update_take(*, account_id: int, broker_order_id: str, timeout: float) -> BrokerOrder | None:
    """The oldest update of the order not yet taken, waiting up to ``timeout`` seconds for one
    (a follow's pause between polls); None if none came."""
    key = redis_keys.order_updates(account_id, broker_order_id)
    if timeout <= 0:
        raw = get_redis().lpop(key)
    else:
        # BLPOP's timeout is whole or fractional seconds; 0 would mean forever.
        popped = get_redis().blpop([key], timeout=max(timeout, 0.01))
        raw = popped[1] if popped else None
    return _decode(raw) if isinstance(raw, str) else None


def order_updates_live(*, account_id: int) -> bool:
    """Whether the account's updates are being pushed to us now (the orderupdates process holds
    its stream): only then does a follow wait for them before it polls."""
    return bool(get_redis().exists(redis_keys.order_updates_live(account_id)))


def order_updates_mark_live(*, account_id: int, live: bool, ttl: float) -> None:
    """Set by the stream's holder while its connection is up (renewed well within ``ttl``),
    cleared when it drops, so a dead process stops the follows' waiting within ``ttl``."""
    key = redis_keys.order_updates_live(account_id)
    if live:
        get_redis().set(key, "1", px=int(ttl * 1000))
    else:
        get_redis().delete(key)


def order_update_publish(*, account_id: int, seen: BrokerOrder) -> None:
    """Put ``seen`` in its order's inbox, whether or not anything follows the order yet."""
    key = redis_keys.order_updates(account_id, seen.broker_order_id)
    pipe = get_redis().pipeline(transaction=False)
    pipe.rpush(key, _encode(seen))
    # Long enough for a follow that starts late (a handed-off exit's task in the queue) to find
    # it; a follow that never comes leaves it to expire (settlement settles such an order).
    pipe.expire(key, int(settings.ORDER_FOLLOW_SECONDS) + 60)
    pipe.execute()


def _encode(seen: BrokerOrder) -> str:
    def plain(value: Any) -> Any:
        if isinstance(value, Decimal):
            return str(value)
        if isinstance(value, datetime):
            return value.isoformat()
        return value

    return json.dumps({name: plain(getattr(seen, name)) for name in BrokerOrder.__dataclass_fields__})


def _decode(raw: str) -> BrokerOrder | None:
    try:
        data = json.loads(raw)
        for name in ("average_price", "trigger_price"):
            data[name] = Decimal(data[name]) if data.get(name) is not None else None
        for name in ("placed_at", "updated_at"):
            data[name] = datetime.fromisoformat(data[name]) if data.get(name) else None
        data["status"] = BrokerOrderStatus(data["status"])
        data["side"] = Side(data["side"])
        return BrokerOrder(**data)
    except (ValueError, TypeError, KeyError, ArithmeticError):
        logger.warning("unreadable order update dropped")
        return None
