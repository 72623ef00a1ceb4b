"""The binary tick parser against frames built from Kite's documented layouts."""

import pytest

from brokers.adapters.kite_packets import (
    MODE_FULL,
    MODE_LTP,
    MODE_QUOTE,
    parse_frame,
    parse_frame_prices,
    parse_packet,
    price_divisor,
    split_packets,
)
from tests.brokers.kite.frames import (
    BCD_TOKEN,
    HEARTBEAT,
    INFY,
    NIFTY50,
    USDINR,
    frame,
    full_packet,
    index_packet,
    ltp_packet,
    quote_packet,
)


def test_ltp_packet_is_eight_bytes_of_token_and_price_in_paise():
    [packet] = parse_frame(frame(ltp_packet(INFY, 154020)))

    assert (packet.instrument_token, packet.mode, packet.last_price) == (INFY, MODE_LTP, 1540.20)
    assert packet.tradable
    assert packet.exchange_timestamp == 0


def test_quote_packet_carries_volumes_and_ohlc():
    raw = quote_packet(
        INFY, ltp=155000, ltq=12, atp=154512, volume=987654, buy_qty=321, sell_qty=123,
        ohlc=(153000, 156000, 152000, 150000),
    )  # fmt: skip
    assert len(raw) == 44

    [packet] = parse_frame(frame(raw))

    assert packet.mode == MODE_QUOTE
    assert packet.last_price == 1550.0
    assert (packet.last_quantity, packet.volume, packet.buy_quantity, packet.sell_quantity) == (12, 987654, 321, 123)
    assert packet.average_price == 1545.12
    assert (packet.open, packet.high, packet.low, packet.close) == (1530.0, 1560.0, 1520.0, 1500.0)
    assert packet.change == pytest.approx(3.3333333)


def test_full_packet_carries_times_open_interest_and_five_levels_of_depth():
    depth = [(10 + i, 154000 - 5 * i, i + 1) for i in range(5)] + [(20 + i, 154100 + 5 * i, i + 2) for i in range(5)]
    raw = full_packet(
        INFY, ltp=154050, last_trade_time=1_764_000_000, exchange_ts=1_764_000_001,
        oi=11, oi_high=12, oi_low=9, depth=depth,
    )  # fmt: skip
    assert len(raw) == 184

    [packet] = parse_frame(frame(raw))

    assert packet.mode == MODE_FULL
    assert packet.last_price == 1540.5
    assert (packet.last_trade_time, packet.exchange_timestamp) == (1_764_000_000, 1_764_000_001)
    assert (packet.oi, packet.oi_day_high, packet.oi_day_low) == (11, 12, 9)
    best_bid, worst_ask = packet.buy_depth[0], packet.sell_depth[-1]
    assert (best_bid.quantity, best_bid.price, best_bid.orders) == (10, 1540.0, 1)
    assert (worst_ask.quantity, worst_ask.price, worst_ask.orders) == (24, 1541.2, 6)
    assert len(packet.buy_depth) == len(packet.sell_depth) == 5


def test_index_quote_packet_has_its_own_28_byte_layout_and_is_not_tradable():
    raw = index_packet(NIFTY50, ltp=2_450_000, high=2_460_000, low=2_440_000, open_=2_445_000, close=2_400_000,
                       change=-36)  # fmt: skip

    [packet] = parse_frame(frame(raw))

    assert (packet.mode, packet.tradable) == (MODE_QUOTE, False)
    assert (packet.last_price, packet.high, packet.low, packet.open, packet.close) == (
        24500.0, 24600.0, 24400.0, 24450.0, 24000.0,
    )  # fmt: skip
    assert packet.exchange_timestamp == 0


def test_index_full_packet_adds_the_exchange_timestamp():
    raw = index_packet(NIFTY50, ltp=2_450_000, high=0, low=0, open_=0, close=0, change=0, exchange_ts=1_764_000_123)
    assert len(raw) == 32

    [packet] = parse_frame(frame(raw))

    assert (packet.mode, packet.exchange_timestamp, packet.last_price) == (MODE_FULL, 1_764_000_123, 24500.0)


def test_heartbeat_and_empty_frames_carry_no_ticks():
    assert parse_frame(HEARTBEAT) == []
    assert parse_frame(b"") == []
    assert parse_frame(frame()) == []


def test_a_frame_carries_several_packets_of_mixed_modes():
    raw = frame(
        ltp_packet(INFY, 154020),
        quote_packet(738561, ltp=142050),
        full_packet(2953217, ltp=312540, last_trade_time=1, exchange_ts=2),
        index_packet(NIFTY50, ltp=2_450_000, high=0, low=0, open_=0, close=0, change=0),
    )

    packets = parse_frame(raw)

    assert [(p.instrument_token, p.mode, p.last_price) for p in packets] == [
        (INFY, MODE_LTP, 1540.2),
        (738561, MODE_QUOTE, 1420.5),
        (2953217, MODE_FULL, 3125.4),
        (NIFTY50, MODE_QUOTE, 24500.0),
    ]


def test_currency_prices_use_the_segment_divisor():
    assert price_divisor(USDINR) == 10_000_000
    assert price_divisor(BCD_TOKEN) == 10_000
    assert price_divisor(INFY) == 100

    [cds, bcd] = parse_frame(frame(ltp_packet(USDINR, 834_512_500), ltp_packet(BCD_TOKEN, 834_512)))

    assert cds.last_price == pytest.approx(83.45125)
    assert bcd.last_price == pytest.approx(83.4512)


def test_negative_prices_are_signed():
    [packet] = parse_frame(frame(ltp_packet(INFY, -3763)))

    assert packet.last_price == -37.63


def test_packets_of_unknown_size_are_skipped_and_truncated_frames_do_not_raise():
    raw = frame(b"\x00" * 12, ltp_packet(INFY, 100))
    assert [p.last_price for p in parse_frame(raw)] == [1.0]

    truncated = frame(ltp_packet(INFY, 100), ltp_packet(INFY, 200))[:-3]
    assert [p.last_price for p in parse_frame(truncated)] == [1.0]
    assert parse_packet(b"\x00\x01") is None


def test_split_packets_follows_the_length_prefixes():
    raw = frame(b"a" * 8, b"b" * 44)

    assert split_packets(raw) == [b"a" * 8, b"b" * 44]


@pytest.mark.parametrize(
    "raw",
    [
        frame(
            ltp_packet(INFY, 154020),
            quote_packet(738561, ltp=142050),
            full_packet(2953217, ltp=312540, last_trade_time=1, exchange_ts=1_764_000_002),
            index_packet(NIFTY50, ltp=2_450_000, high=0, low=0, open_=0, close=0, change=0),
            index_packet(NIFTY50, ltp=2_450_100, high=0, low=0, open_=0, close=0, change=0, exchange_ts=1_764_000_123),
            ltp_packet(USDINR, 834_512_500),
            ltp_packet(INFY, -3763),
        ),
        frame(b"\x00" * 12, ltp_packet(INFY, 100)),
        frame(full_packet(INFY, ltp=100, last_trade_time=1, exchange_ts=5), ltp_packet(INFY, 200))[:-3],
        HEARTBEAT,
        b"",
        frame(),
    ],
)
def test_the_listener_s_price_only_parse_reads_what_the_full_parse_reads(raw):
    full = [(p.instrument_token, p.last_price, p.exchange_timestamp) for p in parse_frame(raw)]

    assert parse_frame_prices(raw) == full
