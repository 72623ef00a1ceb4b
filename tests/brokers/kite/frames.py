"""Kite tick frames built byte by byte from the documented packet layouts (Kite Connect v3,
WebSocket "message structure"), independent of the parser under test."""

import struct

INFY = 408065  # NSE segment (low byte 1)
NIFTY50 = 256265  # indices segment (low byte 9)
USDINR = 0x0ABCDE03  # a CDS token (low byte 3)
BCD_TOKEN = 0x0ABCDE06  # a BCD token (low byte 6)


def ltp_packet(token: int, price_raw: int) -> bytes:
    return struct.pack(">Ii", token, price_raw)


def quote_packet(
    token: int,
    *,
    ltp: int,
    ltq: int = 7,
    atp: int = 0,
    volume: int = 1000,
    buy_qty: int = 50,
    sell_qty: int = 60,
    ohlc: tuple[int, int, int, int] = (0, 0, 0, 0),
) -> bytes:
    open_, high, low, close = ohlc
    return struct.pack(">IiIiIIIiiii", token, ltp, ltq, atp, volume, buy_qty, sell_qty, open_, high, low, close)


def full_packet(
    token: int,
    *,
    ltp: int,
    last_trade_time: int,
    exchange_ts: int,
    oi: int = 0,
    oi_high: int = 0,
    oi_low: int = 0,
    ohlc: tuple[int, int, int, int] = (0, 0, 0, 0),
    depth: list[tuple[int, int, int]] | None = None,
) -> bytes:
    head = quote_packet(token, ltp=ltp, ohlc=ohlc)
    extra = struct.pack(">IIIII", last_trade_time, oi, oi_high, oi_low, exchange_ts)
    entries = depth or [(0, 0, 0)] * 10
    book = b"".join(struct.pack(">IiH", qty, price, orders) + b"\x00\x00" for qty, price, orders in entries)
    return head + extra + book


def index_packet(
    token: int, *, ltp: int, high: int, low: int, open_: int, close: int, change: int, exchange_ts: int | None = None
) -> bytes:
    body = struct.pack(">Iiiiiii", token, ltp, high, low, open_, close, change)
    return body if exchange_ts is None else body + struct.pack(">I", exchange_ts)


def frame(*packets: bytes) -> bytes:
    return struct.pack(">H", len(packets)) + b"".join(struct.pack(">H", len(p)) + p for p in packets)


HEARTBEAT = b"\x00"
