"""The runtime copy of a running strategy in Redis (``strategy:{id}``) and its place in
``symbol:{instrument}:strategies``, the set the market listener subscribes from.
Redis is a cache: all of it can be rebuilt from the database at any time."""

from typing import Any

from algotrader import redis_keys
from algotrader.redis_client import get_redis
from strategies.exit_index import exits_disarm
from strategies.models import Strategy


def runtime_fields(strategy: Strategy) -> dict[Any, str]:  # redis-py keys its mapping by a wide union
    return {
        "id": str(strategy.pk),
        "owner_id": str(strategy.owner_id),
        "status": strategy.status,
        "position": strategy.position,
        "exchange": strategy.exchange,
        "symbol": strategy.symbol,
        "quantity": str(strategy.quantity),
        "stop_loss_price": str(strategy.stop_loss_price or ""),
        "stop_loss_percent": str(strategy.stop_loss_percent or ""),
        "stop_trigger_price": str(strategy.stop_trigger_price or ""),
        "buy_fire_at": strategy.buy_fire_at.isoformat(),
        "sell_fire_at": strategy.sell_fire_at.isoformat(),
        "version": str(strategy.version),
    }


def runtime_load(strategy: Strategy) -> None:
    """Write the strategy's runtime state; the execution lock starts free."""
    instrument = redis_keys.instrument(strategy.exchange, strategy.symbol)
    pipe = get_redis().pipeline(transaction=True)
    pipe.delete(redis_keys.strategy(strategy.pk))
    pipe.hset(redis_keys.strategy(strategy.pk), mapping=runtime_fields(strategy))
    pipe.delete(redis_keys.lock_state(strategy.pk))
    pipe.sadd(redis_keys.symbol_strategies(instrument), strategy.pk)
    # The market listener follows this channel to subscribe without a restart.
    pipe.publish(redis_keys.subscriptions_channel(), instrument)
    pipe.execute()


def runtime_clear(strategy: Strategy) -> None:
    instrument = redis_keys.instrument(strategy.exchange, strategy.symbol)
    pipe = get_redis().pipeline(transaction=True)
    pipe.delete(redis_keys.strategy(strategy.pk))
    pipe.srem(redis_keys.symbol_strategies(instrument), strategy.pk)
    pipe.zrem(redis_keys.stop_losses(instrument), strategy.pk)
    exits_disarm(strategy_id=strategy.pk, instrument=instrument, pipe=pipe)
    pipe.publish(redis_keys.subscriptions_channel(), instrument)
    pipe.execute()


def runtime_refresh(strategy: Strategy) -> None:
    """Rewrite the runtime copy after a position move, leaving the execution lock alone
    (its holder is the caller)."""
    pipe = get_redis().pipeline(transaction=True)
    pipe.delete(redis_keys.strategy(strategy.pk))
    pipe.hset(redis_keys.strategy(strategy.pk), mapping=runtime_fields(strategy))
    pipe.execute()
