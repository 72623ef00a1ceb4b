"""The tick hot path (M1, M2): one Lua script a batch keeps the newest price per instrument and
takes crossed stops out of ``sl:{instrument}`` and reached targets out of ``tp:{instrument}``
atomically, raising trailing stops (``trail:{instrument}``) in the same pass. Floats and plain lists only. A batch is
``{"type": "ticks.batch", "ticks": [[instrument, price, exchange_ts], ...], "received_at": <listener
wall clock>, "first": [instrument, ...]}``."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from typing import Any

from redis import Redis
from redis.commands.core import Script

from algotrader import redis_keys

TICKS_CHANNEL = "ticks"
BATCH_TYPE = "ticks.batch"

# KEYS: price_1, sl_1, ..., price_n, sl_n, tick counts, fired. ARGV: instrument_1, price_1, ts_1, ..., the target,
# trail and trail-spec key prefixes, now. An instrument's target and trail keys are built here from its name and
# the prefixes (``redis_keys``'s): passing three more keys a tick cost a quarter more per batch, for indexes most
# instruments leave empty (one Redis, never a cluster: undeclared keys are fine). Returns {applied flags as a
# "1"/"0" string, then per record: kind, tick index, strategy id, value}. Kinds: "s" a stop crossed, "r" a stop
# the trail had raised crossed, "t" a target reached, "m" a trailing stop raised (value: the new stop). In the
# tick's order: the trail follows the price up first, so a stop is checked at its newest level; a stop or target
# taken out takes the position's other exits with it (one exit per position).
INGEST_LUA = """
local n = (#KEYS - 2) / 2
local counts, fired = KEYS[#KEYS - 1], KEYS[#KEYS]
local tpp, trp, trpp, now = ARGV[#ARGV - 3], ARGV[#ARGV - 2], ARGV[#ARGV - 1], ARGV[#ARGV]
local applied = {}
local out = {''}
local function drop(id, slkey, tpkey, trkey, trpkey)
  redis.call('ZREM', slkey, id)
  redis.call('ZREM', tpkey, id)
  redis.call('ZREM', trkey, id)
  redis.call('HDEL', trpkey, id)
end
for i = 1, n do
  local pkey, slkey = KEYS[2 * i - 1], KEYS[2 * i]
  local inst, price, ts = ARGV[3 * i - 2], ARGV[3 * i - 1], ARGV[3 * i]
  local tpkey, trkey, trpkey = tpp .. inst, trp .. inst, trpp .. inst
  local last = redis.call('HGET', pkey, 'ts')
  if last and tonumber(last) > tonumber(ts) then
    applied[i] = '0'
  else
    applied[i] = '1'
    redis.call('HSET', pkey, 'price', price, 'ts', ts)
    redis.call('HINCRBY', counts, inst, 1)
    local up = redis.call('ZRANGEBYSCORE', trkey, '-inf', '(' .. price)
    if #up > 0 then
      local p = tonumber(price)
      for _, id in ipairs(up) do
        local stop = redis.call('ZSCORE', slkey, id)
        local spec = redis.call('HGET', trpkey, id)
        local kind, dist, moved
        if spec then kind, dist, moved = string.match(spec, '^(%a)|([^|]+)|(%d)$') end
        if not stop or not kind then
          -- Fired or disarmed: a trail with no stop to move is left behind, never followed.
          redis.call('ZREM', trkey, id)
          redis.call('HDEL', trpkey, id)
        else
          redis.call('ZADD', trkey, price, id)
          local new
          if kind == 'p' then new = p * (1 - tonumber(dist) / 100) else new = p - tonumber(dist) end
          -- Down to the paisa: a stop never rounds up past where the user put it.
          new = math.floor(new * 100 + 1e-6) / 100
          if new > tonumber(stop) then
            redis.call('ZADD', slkey, new, id)
            if moved == '0' then redis.call('HSET', trpkey, id, kind .. '|' .. dist .. '|1') end
            out[#out + 1] = 'm'
            out[#out + 1] = i
            out[#out + 1] = id
            out[#out + 1] = tostring(new)
          end
        end
      end
    end
    local hit = redis.call('ZRANGEBYSCORE', slkey, price, '+inf')
    for _, id in ipairs(hit) do
      local spec = redis.call('HGET', trpkey, id)
      local kind = 's'
      if spec and string.sub(spec, -2) == '|1' then kind = 'r' end
      drop(id, slkey, tpkey, trkey, trpkey)
      redis.call('HSET', fired, id, inst .. ' ' .. price .. ' ' .. ts .. ' ' .. now .. ' ' .. kind)
      out[#out + 1] = kind
      out[#out + 1] = i
      out[#out + 1] = id
      out[#out + 1] = ''
    end
    local reached = redis.call('ZRANGEBYSCORE', tpkey, '-inf', price)
    for _, id in ipairs(reached) do
      drop(id, slkey, tpkey, trkey, trpkey)
      redis.call('HSET', fired, id, inst .. ' ' .. price .. ' ' .. ts .. ' ' .. now .. ' t')
      out[#out + 1] = 't'
      out[#out + 1] = i
      out[#out + 1] = id
      out[#out + 1] = ''
    end
  end
end
out[1] = table.concat(applied)
return out
"""

# What the script's record kinds mean to the exit (``Order.Reason`` values, by name: market sits below execution).
STOPLOSS, TRAIL, TARGET = "STOPLOSS", "TRAIL", "TARGET"
REASONS = {"s": STOPLOSS, "r": TRAIL, "t": TARGET}


@dataclass(frozen=True)
class Trigger:
    """A stop or target taken out of its index: the strategy, the tick that crossed it, and
    the exit's reason (STOPLOSS, TRAIL for a stop the trail had raised, TARGET)."""

    strategy_id: int
    instrument: str
    price: float
    exchange_ts: float
    reason: str = STOPLOSS


@dataclass(frozen=True)
class TrailMove:
    """A trailing stop raised in ``sl:`` by a new high: ``high`` is the tick's price."""

    strategy_id: int
    instrument: str
    high: float
    stop: float


@dataclass
class Ingested:
    applied: list[bool] = field(default_factory=list)
    triggers: list[Trigger] = field(default_factory=list)
    moves: list[TrailMove] = field(default_factory=list)

    @property
    def ignored(self) -> int:
        return self.applied.count(False)


_scripts: dict[int, Script] = {}
# Bounded by the instruments traded; saves two string builds a tick on the hot path.
_tick_keys = functools.lru_cache(maxsize=65536)(redis_keys.tick_keys)
_EXIT_PREFIXES = [redis_keys.targets(""), redis_keys.trail_highs(""), redis_keys.trail_specs("")]


def _script(redis: Redis) -> Script:
    script = _scripts.get(id(redis))
    if script is None:
        script = _scripts[id(redis)] = redis.register_script(INGEST_LUA)
    return script


def ingest(redis: Redis, ticks: list[Any]) -> Ingested:
    """Apply one batch of ``[instrument, price, exchange_ts]`` ticks atomically."""
    if not ticks:
        return Ingested()
    keys: list[str] = []
    args: list[Any] = []
    for instrument, price, ts in ticks:
        keys += _tick_keys(instrument)
        args.append(instrument)
        args.append(repr(float(price)))
        args.append(repr(float(ts)))
    keys.append(redis_keys.tick_counts())
    keys.append(redis_keys.stoploss_fired())
    args += _EXIT_PREFIXES
    args.append(repr(time.time()))
    raw = _script(redis)(keys=keys, args=args)
    flags = raw[0]
    applied = [flag == "1" for flag in (flags.decode() if isinstance(flags, bytes) else flags)]
    result = Ingested(applied=applied)
    for position in range(1, len(raw), 4):
        kind, index, member, value = raw[position : position + 4]
        kind = kind.decode() if isinstance(kind, bytes) else kind
        instrument, price, ts = ticks[int(index) - 1]
        if kind == "m":
            result.moves.append(TrailMove(int(member), instrument, float(price), float(value)))
        else:
            result.triggers.append(Trigger(int(member), instrument, float(price), float(ts), REASONS[kind]))
    return result
