"""The target index ``tp:{instrument}`` (strategy id -> take-profit price) and the trailing stop
``trail:{instrument}`` (strategy id -> highest price since the fill) with ``trailp:{instrument}``
(how far below it the stop trails). The tick script reads and moves them with ``sl:``; these
functions arm them after a fill and take them out with the stop."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

from redis.client import Pipeline

from algotrader import redis_keys
from algotrader.redis_client import get_redis
from strategies.models import Strategy

PAISA = Decimal("0.01")


@dataclass(frozen=True)
class ExitLevels:
    """A held position's exits: its stop, and its target (None: none)."""

    stop: Decimal
    target: Decimal | None


def trail_stop(*, high: Decimal, percent: Decimal | None, points: Decimal | None) -> Decimal:
    """The trailing stop under ``high``, down to the paisa (as the tick script rounds it)."""
    stop = high * (100 - percent) / 100 if percent is not None else high - (points or Decimal(0))
    return stop.quantize(PAISA, rounding=ROUND_DOWN)


def exit_levels(
    *,
    entry_price: Decimal,
    fixed_stop: Decimal,
    high: Decimal | None,
    trail_percent: Decimal | None,
    trail_points: Decimal | None,
    target_percent: Decimal | None,
    target_price: Decimal | None,
) -> ExitLevels:
    """The stop is the higher of the fixed one and the trail's under the high (the fill at first);
    the target a percentage above the fill, or the price given."""
    stop = fixed_stop
    if trail_percent is not None or trail_points is not None:
        trailed = trail_stop(high=max(high or entry_price, entry_price), percent=trail_percent, points=trail_points)
        stop = max(stop, trailed)
    if target_percent is not None:
        target_price = (entry_price * (100 + target_percent) / 100).quantize(PAISA)
    return ExitLevels(stop=stop, target=target_price)


def exits_at_fill(strategy: Strategy, *, entry_price: Decimal, fixed_stop: Decimal) -> dict[str, Decimal | None]:
    """What a BUY's fill fixes on the strategy: the stop (the trail's if higher), the target
    and, for a trailing stop, the high it starts from."""
    levels = exit_levels(
        entry_price=entry_price,
        fixed_stop=fixed_stop,
        high=None,
        trail_percent=strategy.stop_loss_trail_percent,
        trail_points=strategy.stop_loss_trail_points,
        target_percent=strategy.take_profit_percent,
        target_price=strategy.take_profit_price,
    )
    trailing = strategy.stop_loss_trail_percent is not None or strategy.stop_loss_trail_points is not None
    return {
        "stop_trigger_price": levels.stop,
        "target_price": levels.target,
        "trail_high_price": entry_price if trailing else None,
    }


def trail_spec(*, percent: Decimal | None, points: Decimal | None, moved: bool = False) -> str | None:
    """The ``trailp:`` value the tick script parses; None without a trail."""
    flag = "1" if moved else "0"
    if percent is not None:
        return f"p|{percent}|{flag}"
    if points is not None:
        return f"a|{points}|{flag}"
    return None


def exits_arm(
    *,
    strategy_id: int,
    instrument: str,
    target_price: Decimal | None,
    trail: str | None,
    high: Decimal | None,
    pipe: Pipeline | None = None,
) -> None:
    """Arm (or re-arm) the target and the trail of a held position; its stop is ``sl:``'s
    (``stoploss_arm``), armed with them. A None part is taken out. ``pipe``: written with
    the caller's pipeline (recovery's), else at once in one transaction."""
    own = pipe is None
    p = get_redis().pipeline(transaction=True) if pipe is None else pipe
    member = str(strategy_id)
    if target_price is not None and target_price > 0:
        p.zadd(redis_keys.targets(instrument), {member: float(target_price)})
    else:
        p.zrem(redis_keys.targets(instrument), member)
    if trail is not None and high is not None:
        p.zadd(redis_keys.trail_highs(instrument), {member: float(high)})
        p.hset(redis_keys.trail_specs(instrument), member, trail)
    else:
        p.zrem(redis_keys.trail_highs(instrument), member)
        p.hdel(redis_keys.trail_specs(instrument), member)
    if own:
        p.publish(redis_keys.subscriptions_channel(), instrument)
        p.execute()


def exits_arm_held(strategy: Strategy, *, pipe: Pipeline | None = None) -> None:
    """Arm the target and trail of a held position as the database records them (after the
    fill, an update, a rebuild): the trail from its recorded high, flagged as having raised
    the stop if that high is above the fill."""
    assert strategy.entry_price is not None
    high = strategy.trail_high_price or strategy.entry_price
    exits_arm(
        strategy_id=strategy.pk,
        instrument=redis_keys.instrument(strategy.exchange, strategy.symbol),
        target_price=strategy.target_price,
        trail=trail_spec(
            percent=strategy.stop_loss_trail_percent,
            points=strategy.stop_loss_trail_points,
            moved=high > strategy.entry_price,
        ),
        high=high,
        pipe=pipe,
    )


def exits_disarm(*, strategy_id: int, instrument: str, pipe: Pipeline | None = None) -> None:
    """Take out the target and the trail; a no-op for those already taken by a tick."""
    p = get_redis().pipeline(transaction=True) if pipe is None else pipe
    member = str(strategy_id)
    p.zrem(redis_keys.targets(instrument), member)
    p.zrem(redis_keys.trail_highs(instrument), member)
    p.hdel(redis_keys.trail_specs(instrument), member)
    if pipe is None:
        p.execute()


def targets_armed(*, instrument: str) -> dict[int, Decimal]:
    """Armed targets of an instrument, strategy id -> price (for admin and tests)."""
    armed = get_redis().zrange(redis_keys.targets(instrument), 0, -1, withscores=True)
    return {int(member): Decimal(repr(score)) for member, score in armed}  # type: ignore[misc]


def trails_armed(*, instrument: str) -> dict[int, tuple[Decimal, str]]:
    """Armed trails of an instrument, strategy id -> (recorded high, spec)."""
    redis = get_redis()
    highs = redis.zrange(redis_keys.trail_highs(instrument), 0, -1, withscores=True)
    specs = redis.hgetall(redis_keys.trail_specs(instrument))
    return {int(m): (Decimal(repr(s)), specs.get(str(m), "")) for m, s in highs}  # type: ignore[misc]
