"""The stop-loss index ``sl:{instrument}``: strategy ids holding a position, scored by stop
trigger price. The tick consumer takes crossed stops out of it atomically, so each stop
triggers at most once."""

from decimal import Decimal

from algotrader import redis_keys
from algotrader.redis_client import get_redis
from strategies.exit_index import exits_disarm


def stoploss_arm(*, strategy_id: int, instrument: str, trigger_price: Decimal) -> None:
    """Arm (or move) the stop of ``strategy_id`` on ``instrument`` (``EXCHANGE:SYMBOL``):
    it triggers on the first tick at or below ``trigger_price``."""
    if trigger_price <= 0:
        raise ValueError("a stop trigger price must be positive")
    pipe = get_redis().pipeline(transaction=True)
    # The score is a double: exact for any price on a paise tick grid below 10^13.
    pipe.zadd(redis_keys.stop_losses(instrument), {str(strategy_id): float(trigger_price)})
    # An armed instrument must be subscribed even if its strategy set is being rebuilt.
    pipe.publish(redis_keys.subscriptions_channel(), instrument)
    pipe.execute()


def stoploss_move(*, strategy_id: int, instrument: str, trigger_price: Decimal) -> bool:
    """Move a stop that is still armed; False if it is not (already triggered and taken
    out by the tick consumer, or never armed): a stop that fired must not be put back."""
    if trigger_price <= 0:
        raise ValueError("a stop trigger price must be positive")
    key, member = redis_keys.stop_losses(instrument), str(strategy_id)
    pipe = get_redis().pipeline(transaction=True)
    pipe.zadd(key, {member: float(trigger_price)}, xx=True)  # XX: update only, never add
    pipe.zscore(key, member)
    return pipe.execute()[1] is not None


def stoploss_disarm(*, strategy_id: int, instrument: str) -> None:
    """Take the stop out, and the position's target and trail with it (one exit per position);
    a no-op for what already triggered or was never armed."""
    pipe = get_redis().pipeline(transaction=True)
    pipe.zrem(redis_keys.stop_losses(instrument), str(strategy_id))
    exits_disarm(strategy_id=strategy_id, instrument=instrument, pipe=pipe)
    pipe.execute()


def stoploss_armed(*, instrument: str) -> dict[int, Decimal]:
    """Armed stops of an instrument, strategy id -> trigger price (for admin and tests)."""
    armed = get_redis().zrange(redis_keys.stop_losses(instrument), 0, -1, withscores=True)
    return {int(member): Decimal(repr(score)) for member, score in armed}  # type: ignore[misc]
