"""The simulator's market: ``SimulatedMarket`` prices plus the day statistics a Kite
quote carries (open/high/low/close, volume, average price, five-level depth), so the
ticker's quote/full packets and ``/quote`` are consistent with the last price."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from decimal import Decimal

from brokers.adapters.base import Instrument
from brokers.simulated_market import SimulatedMarket

Key = tuple[str, str]
DEPTH_LEVELS = 5
CIRCUIT_BAND = 0.2  # the circuit limits: the previous close +/- 20 %


def circuit_band(close: float) -> tuple[Decimal, Decimal]:
    return Decimal(str(round(close * (1 - CIRCUIT_BAND), 2))), Decimal(str(round(close * (1 + CIRCUIT_BAND), 2)))


@dataclass(frozen=True)
class DepthLevel:
    price: float
    quantity: int
    orders: int


@dataclass(frozen=True)
class Quote:
    instrument: Instrument
    last_price: float
    last_quantity: int
    average_price: float
    volume: int
    buy_quantity: int
    sell_quantity: int
    open: float
    high: float
    low: float
    close: float
    last_trade_time: float
    timestamp: float
    bids: tuple[DepthLevel, ...]
    asks: tuple[DepthLevel, ...]


@dataclass
class _DayStats:
    open: float
    high: float
    low: float
    close: float
    volume: int = 0
    turnover: float = 0.0
    last_quantity: int = 0
    last_trade_time: float = 0.0


class MarketData:
    def __init__(self, *, seed: int, volatility: float) -> None:
        self.market = SimulatedMarket(seed=seed, volatility=volatility)
        self._stats: dict[Key, _DayStats] = {}
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._suspended: set[Key] = set()

    def instrument(self, exchange: str, symbol: str) -> Instrument | None:
        return self.market.instrument(exchange.upper(), symbol.upper())

    def price(self, instrument: Instrument) -> Decimal:
        return self.market.price(instrument.exchange, instrument.symbol)

    def set_price(self, instrument: Instrument, price: float) -> None:
        self.market.set_price(instrument.exchange, instrument.symbol, price)
        self._record_trade((instrument.exchange, instrument.symbol), float(self.price(instrument)), time.time())

    def step(self, instruments: list[Instrument]) -> None:
        """Advance these instruments one random-walk step, as if each traded once."""
        ticks = self.market.step([(i.exchange, i.symbol) for i in instruments])
        for tick in ticks:
            self._record_trade((tick.exchange, tick.symbol), tick.price, tick.exchange_ts)

    def suspend(self, instrument: Instrument, *, suspended: bool = True) -> None:
        """Suspended from trading: quoted nothing (Kite leaves it out), and orders refused."""
        key = (instrument.exchange, instrument.symbol)
        with self._lock:
            if suspended:
                self._suspended.add(key)
            else:
                self._suspended.discard(key)

    def suspended(self, instrument: Instrument) -> bool:
        return (instrument.exchange, instrument.symbol) in self._suspended

    def circuit(self, instrument: Instrument) -> tuple[Decimal, Decimal]:
        """The day's circuit band (lower, upper): the close +/- 20 %, as ``/quote`` reports it."""
        with self._lock:
            close = self._stats_for((instrument.exchange, instrument.symbol), instrument).close
        return circuit_band(close)

    def quote(self, instrument: Instrument) -> Quote:
        key = (instrument.exchange, instrument.symbol)
        last = float(self.price(instrument))
        with self._lock:
            stats = self._stats_for(key, instrument)
            tick = float(instrument.tick_size) or 0.05
            tradable = instrument.segment != "INDICES"
            bids = tuple(self._level(round(last - tick * (n + 1), 2)) for n in range(DEPTH_LEVELS) if tradable)
            asks = tuple(self._level(round(last + tick * (n + 1), 2)) for n in range(DEPTH_LEVELS) if tradable)
            return Quote(
                instrument=instrument,
                last_price=last,
                last_quantity=stats.last_quantity,
                average_price=round(stats.turnover / stats.volume, 2) if stats.volume else last,
                volume=stats.volume,
                buy_quantity=sum(level.quantity for level in bids) * 40,
                sell_quantity=sum(level.quantity for level in asks) * 40,
                open=stats.open,
                high=max(stats.high, last),
                low=min(stats.low, last),
                close=stats.close,
                last_trade_time=stats.last_trade_time or time.time(),
                timestamp=time.time(),
                bids=bids,
                asks=asks,
            )

    def _level(self, price: float) -> DepthLevel:
        # Every order at a level is for at least one share: never more orders than quantity.
        quantity = self._rng.randint(1, 400) * 5
        return DepthLevel(price, quantity, self._rng.randint(1, min(20, quantity)))

    def _record_trade(self, key: Key, price: float, at: float) -> None:
        instrument = self.market.instrument(*key)
        if instrument is None:
            return
        with self._lock:
            stats = self._stats_for(key, instrument)
            quantity = 0 if instrument.segment == "INDICES" else self._rng.randint(1, 100)
            stats.high = max(stats.high, price)
            stats.low = min(stats.low, price)
            stats.volume += quantity
            stats.turnover += quantity * price
            stats.last_quantity = quantity
            stats.last_trade_time = at

    def _stats_for(self, key: Key, instrument: Instrument) -> _DayStats:
        stats = self._stats.get(key)
        if stats is None:
            reference = float(instrument.reference_price)
            stats = _DayStats(open=reference, high=reference, low=reference, close=reference)
            self._stats[key] = stats
        return stats
