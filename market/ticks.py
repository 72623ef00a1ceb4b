"""The tick hot path (M1, M2): one Lua script a batch keeps the newest price per instrument and
takes crossed stops out of ``sl:{instrument}`` atomically. Floats and plain lists only. A batch is
``{"type": "ticks.batch", "ticks": [[instrument, price, exchange_ts], ...], "received_at": <listener
wall clock>, "first": [instrument, ...]}``."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from redis import Redis
from redis.commands.core import Script

from algotrader import redis_keys

TICKS_CHANNEL = "ticks"
BATCH_TYPE = "ticks.batch"

# KEYS: price_1, sl_1, ..., price_n, sl_n, tick counts, fired.  ARGV: instrument_1, price_1, ts_1, ..., now.
# Returns {applied flags as a "1"/"0" string, tick index, strategy id, tick index, ...}.
INGEST_LUA = """
local n = (#KEYS - 2) / 2
local counts, fired = KEYS[#KEYS - 1], KEYS[#KEYS]
local now = ARGV[#ARGV]
local applied = {}
local out = {''}
for i = 1, n do
  local pkey, slkey = KEYS[2 * i - 1], KEYS[2 * i]
  local inst, price, ts = ARGV[3 * i - 2], ARGV[3 * i - 1], ARGV[3 * i]
  local last = redis.call('HGET', pkey, 'ts')
  if last and tonumber(last) > tonumber(ts) then
    applied[i] = '0'
  else
    applied[i] = '1'
    redis.call('HSET', pkey, 'price', price, 'ts', ts)
    redis.call('HINCRBY', counts, inst, 1)
    local hit = redis.call('ZRANGEBYSCORE', slkey, price, '+inf')
    if #hit > 0 then
      redis.call('ZREMRANGEBYSCORE', slkey, price, '+inf')
      for _, id in ipairs(hit) do
        redis.call('HSET', fired, id, inst .. ' ' .. price .. ' ' .. ts .. ' ' .. now)
        out[#out + 1] = i
        out[#out + 1] = id
      end
    end
  end
end
out[1] = table.concat(applied)
return out
"""


@dataclass(frozen=True)
class Trigger:
    """A stop taken out of ``sl:``: the strategy, and the tick that crossed it."""

    strategy_id: int
    instrument: str
    price: float
    exchange_ts: float


@dataclass
class Ingested:
    applied: list[bool] = field(default_factory=list)
    triggers: list[Trigger] = field(default_factory=list)

    @property
    def ignored(self) -> int:
        return self.applied.count(False)


_scripts: dict[int, Script] = {}


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
        keys.append(redis_keys.instrument_price(instrument))
        keys.append(redis_keys.stop_losses(instrument))
        args.append(instrument)
        args.append(repr(float(price)))
        args.append(repr(float(ts)))
    keys.append(redis_keys.tick_counts())
    keys.append(redis_keys.stoploss_fired())
    args.append(repr(time.time()))
    raw = _script(redis)(keys=keys, args=args)
    flags = raw[0]
    applied = [flag == "1" for flag in (flags.decode() if isinstance(flags, bytes) else flags)]
    triggers = []
    for position in range(1, len(raw), 2):
        index = int(raw[position]) - 1
        instrument, price, ts = ticks[index]
        triggers.append(Trigger(int(raw[position + 1]), instrument, float(price), float(ts)))
    return Ingested(applied=applied, triggers=triggers)
