"""Kite's binary tick packets, exactly the layouts of Kite Connect v3's WebSocket "message
structure": a frame of length-prefixed packets, 8-byte ltp, 44-byte quote, 184-byte full
(index: 8, 28, 32), integer prices scaled by a per-segment divisor."""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass, field
from typing import Any, Final

logger = logging.getLogger(__name__)

MODE_LTP: Final = "ltp"
MODE_QUOTE: Final = "quote"
MODE_FULL: Final = "full"

# The low byte of an instrument token is its segment (Kite's EXCHANGE_MAP).
SEGMENT_CDS: Final = 3
SEGMENT_BCD: Final = 6
SEGMENT_INDICES: Final = 9

LTP_PACKET: Final = 8
INDEX_QUOTE_PACKET: Final = 28
INDEX_FULL_PACKET: Final = 32
QUOTE_PACKET: Final = 44
FULL_PACKET: Final = 184

_U16 = struct.Struct(">H")
# Prices are signed (MCX crude went below zero); counts, volumes and times are unsigned.
_LTP = struct.Struct(">Ii")
_INDEX_QUOTE = struct.Struct(">Iiiiiii")  # token, ltp, high, low, open, close, change
_QUOTE = struct.Struct(">IiIiIIIiiii")  # token, ltp, ltq, atp, volume, buy qty, sell qty, open, high, low, close
_FULL_EXTRA = struct.Struct(">IIIII")  # last trade time, oi, oi day high, oi day low, exchange timestamp
_DEPTH_ENTRY = struct.Struct(">IiH2x")  # quantity, price, orders, padding


def price_divisor(instrument_token: int) -> float:
    """Prices arrive as integers: paise for most segments, more decimals for currency."""
    segment = instrument_token & 0xFF
    if segment == SEGMENT_CDS:
        return 10_000_000.0
    if segment == SEGMENT_BCD:
        return 10_000.0
    return 100.0


@dataclass(frozen=True)
class DepthEntry:
    quantity: int
    price: float
    orders: int


@dataclass(frozen=True)
class KitePacket:
    """One parsed packet; fields a mode does not carry stay at their defaults."""

    instrument_token: int
    mode: str
    tradable: bool
    last_price: float
    last_quantity: int = 0
    average_price: float = 0.0
    volume: int = 0
    buy_quantity: int = 0
    sell_quantity: int = 0
    open: float = 0.0
    high: float = 0.0
    low: float = 0.0
    close: float = 0.0
    change: float = 0.0
    last_trade_time: int = 0
    oi: int = 0
    oi_day_high: int = 0
    oi_day_low: int = 0
    exchange_timestamp: int = 0  # seconds since the epoch; 0 when the mode does not carry it
    buy_depth: tuple[DepthEntry, ...] = field(default=())
    sell_depth: tuple[DepthEntry, ...] = field(default=())


def split_packets(frame: bytes) -> list[bytes]:
    """A frame is a 2-byte packet count, then per packet a 2-byte length and the packet.
    A frame shorter than two bytes is Kite's 1-byte heartbeat."""
    if len(frame) < 2:
        return []
    (count,) = _U16.unpack_from(frame, 0)
    packets = []
    offset = 2
    for _ in range(count):
        if offset + 2 > len(frame):
            break
        (length,) = _U16.unpack_from(frame, offset)
        offset += 2
        if offset + length > len(frame):
            logger.warning("kite ticker: truncated frame (%d bytes, packet of %d at %d)", len(frame), length, offset)
            break
        packets.append(frame[offset : offset + length])
        offset += length
    return packets


def parse_packet(packet: bytes) -> KitePacket | None:
    size = len(packet)
    if size < LTP_PACKET:
        return None
    token = struct.unpack_from(">I", packet, 0)[0]
    divisor = price_divisor(token)
    tradable = token & 0xFF != SEGMENT_INDICES

    if size == LTP_PACKET:
        _, ltp = _LTP.unpack(packet)
        return KitePacket(token, MODE_LTP, tradable, ltp / divisor)

    if size in (INDEX_QUOTE_PACKET, INDEX_FULL_PACKET):
        _, ltp, high, low, open_, close, _net_change = _INDEX_QUOTE.unpack_from(packet, 0)
        timestamp = struct.unpack_from(">I", packet, 28)[0] if size == INDEX_FULL_PACKET else 0
        last_price = ltp / divisor
        close_price = close / divisor
        return KitePacket(
            token,
            MODE_FULL if size == INDEX_FULL_PACKET else MODE_QUOTE,
            tradable,
            last_price,
            open=open_ / divisor,
            high=high / divisor,
            low=low / divisor,
            close=close_price,
            change=(last_price - close_price) * 100 / close_price if close_price else 0.0,
            exchange_timestamp=timestamp,
        )

    if size in (QUOTE_PACKET, FULL_PACKET):
        _, ltp, ltq, atp, volume, buy_qty, sell_qty, open_, high, low, close = _QUOTE.unpack_from(packet, 0)
        last_price = ltp / divisor
        close_price = close / divisor
        extra: dict[str, Any] = {}
        if size == FULL_PACKET:
            last_trade_time, oi, oi_high, oi_low, timestamp = _FULL_EXTRA.unpack_from(packet, QUOTE_PACKET)
            depth = [
                DepthEntry(quantity, price / divisor, orders)
                for quantity, price, orders in (_DEPTH_ENTRY.unpack_from(packet, 64 + 12 * i) for i in range(10))
            ]
            extra = {
                "last_trade_time": last_trade_time,
                "oi": oi,
                "oi_day_high": oi_high,
                "oi_day_low": oi_low,
                "exchange_timestamp": timestamp,
                "buy_depth": tuple(depth[:5]),
                "sell_depth": tuple(depth[5:]),
            }
        return KitePacket(
            token,
            MODE_FULL if size == FULL_PACKET else MODE_QUOTE,
            tradable,
            last_price,
            last_quantity=ltq,
            average_price=atp / divisor,
            volume=volume,
            buy_quantity=buy_qty,
            sell_quantity=sell_qty,
            open=open_ / divisor,
            high=high / divisor,
            low=low / divisor,
            close=close_price,
            change=(last_price - close_price) * 100 / close_price if close_price else 0.0,
            **extra,
        )

    logger.debug("kite ticker: ignoring a packet of unknown size %d", size)
    return None


def parse_frame(frame: bytes) -> list[KitePacket]:
    return [parsed for parsed in map(parse_packet, split_packets(frame)) if parsed is not None]


_TIMESTAMP = struct.Struct(">I")
# Where each packet size carries the exchange timestamp (none for ltp and quote).
_TIMESTAMP_AT: Final = {INDEX_FULL_PACKET: 28, FULL_PACKET: QUOTE_PACKET + 16}
_KNOWN_SIZES: Final = frozenset({LTP_PACKET, INDEX_QUOTE_PACKET, INDEX_FULL_PACKET, QUOTE_PACKET, FULL_PACKET})


def parse_frame_prices(frame: bytes) -> list[tuple[int, float, int]]:
    """``(instrument_token, last_price, exchange_timestamp)`` of every packet of ``frame`` (timestamp
    0 where the mode carries none), read at fixed offsets: all the listener needs, without the CPU
    of building whole packets at the tick rate. Gives what ``parse_frame`` gives (tested)."""
    prices = []
    for packet in split_packets(frame):
        size = len(packet)
        if size in _KNOWN_SIZES:
            token, ltp = _LTP.unpack_from(packet, 0)
            at = _TIMESTAMP_AT.get(size)
            timestamp = _TIMESTAMP.unpack_from(packet, at)[0] if at is not None else 0
            prices.append((token, ltp / price_divisor(token), timestamp))
    return prices
