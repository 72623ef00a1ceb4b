"""A simulated market: one seeded geometric random walk per instrument, rounded to
its tick size. The paper broker's feed and the Kite simulator's ticker both draw
from it, so demos and tests see realistic, reproducible prices at any hour."""

import math
import random
import threading
import time
import zlib
from decimal import Decimal

from brokers.adapters.base import Instrument, Tick
from brokers.instruments import load_instruments

# A lively but plausible intraday move at one step a second.
DEFAULT_VOLATILITY = 0.0005


class SimulatedMarket:
    def __init__(
        self,
        instruments: tuple[Instrument, ...] | None = None,
        *,
        seed: int = 7,
        volatility: float = DEFAULT_VOLATILITY,
    ) -> None:
        self._instruments = {(i.exchange, i.symbol): i for i in (instruments or load_instruments())}
        self._prices = {key: float(i.reference_price) for key, i in self._instruments.items()}
        self._rngs = {key: random.Random(seed ^ zlib.crc32(f"{key[0]}:{key[1]}".encode())) for key in self._instruments}
        self._volatility = volatility
        self._overrides: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def instrument(self, exchange: str, symbol: str) -> Instrument | None:
        return self._instruments.get((exchange, symbol))

    def price(self, exchange: str, symbol: str) -> Decimal:
        key = (exchange, symbol)
        with self._lock:
            return self._round(key, self._prices[key])

    def set_price(self, exchange: str, symbol: str, price: float) -> None:
        """Move an instrument to a price (tests and demos drive stop-losses with this)."""
        with self._lock:
            self._prices[(exchange, symbol)] = price

    def step(self, keys: list[tuple[str, str]]) -> list[Tick]:
        """Advance the given instruments one step and return their ticks."""
        now = time.time()
        ticks = []
        with self._lock:
            for key in keys:
                instrument = self._instruments.get(key)
                if instrument is None:
                    continue
                rng = self._rngs[key]
                price = self._prices[key] * math.exp(rng.gauss(0.0, self._volatility))
                self._prices[key] = price
                ticks.append(
                    Tick(
                        exchange=key[0],
                        symbol=key[1],
                        price=float(self._round(key, price)),
                        exchange_ts=now,
                        instrument_token=instrument.instrument_token,
                    )
                )
        return ticks

    def _round(self, key: tuple[str, str], price: float) -> Decimal:
        tick = self._instruments[key].tick_size
        if not tick:
            return Decimal(str(round(price, 2)))
        return (Decimal(str(price)) / tick).quantize(Decimal(1)) * tick
