"""The ticker WebSocket read with a plain WebSocket client and ``struct`` at the offsets
Kite documents: frame header, ltp/quote/full packets for equities, index packets,
heartbeats, JSON order updates and errors, and the handshake refusal."""

import json
import struct
import time
from contextlib import ExitStack

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.waiting import wait_until

INFY = 408065
NIFTY_50 = 256265


def open_ticker(kite_sim, account) -> ClientConnection:
    return connect(f"{kite_sim.ws_root}?api_key={account.api_key}&access_token={account.access_token}")


def split_frame(frame: bytes) -> list[bytes]:
    (count,) = struct.unpack(">H", frame[:2])
    packets, offset = [], 2
    for _ in range(count):
        (length,) = struct.unpack(">H", frame[offset : offset + 2])
        packets.append(frame[offset + 2 : offset + 2 + length])
        offset += 2 + length
    assert offset == len(frame)
    return packets


def next_binary_frame(ws: ClientConnection) -> bytes:
    while True:
        message = ws.recv(timeout=3)
        if isinstance(message, bytes) and len(message) > 1:
            return message


def packets_by_token(ws: ClientConnection) -> dict[int, bytes]:
    return {struct.unpack(">I", p[:4])[0]: p for p in split_frame(next_binary_frame(ws))}


def subscribe(ws: ClientConnection, mode: str, tokens: list[int]) -> None:
    ws.send(json.dumps({"a": "subscribe", "v": tokens}))
    ws.send(json.dumps({"a": "mode", "v": [mode, tokens]}))


def test_ltp_packets_are_token_and_price_in_paise(kite_sim, sim_account):
    kite_sim.set_price("NSE", "INFY", 1500)
    with open_ticker(kite_sim, sim_account) as ws:
        subscribe(ws, "ltp", [INFY, NIFTY_50])

        packets = wait_until(lambda: (p := packets_by_token(ws)) and all(len(x) == 8 for x in p.values()) and p)

    token, price = struct.unpack(">II", packets[INFY])
    assert token == INFY
    assert token & 0xFF == 1  # NSE segment
    assert 1400 < price / 100 < 1600
    assert struct.unpack(">II", packets[NIFTY_50])[0] & 0xFF == 9  # indices segment


def test_quote_packet_is_44_bytes_and_is_the_default_mode(kite_sim, sim_account):
    with open_ticker(kite_sim, sim_account) as ws:
        ws.send(json.dumps({"a": "subscribe", "v": [INFY]}))

        packet = packets_by_token(ws)[INFY]

    assert len(packet) == 44
    fields = struct.unpack(">11I", packet)
    token, ltp, last_qty, avg, volume, buy_qty, sell_qty, open_, high, low, close = fields
    assert token == INFY
    assert close == 154020  # yesterday's close, from the instrument list, in paise
    assert low <= ltp <= high
    assert volume >= last_qty
    assert buy_qty > 0
    assert sell_qty > 0
    assert avg > 0
    assert open_ > 0


def test_full_packet_is_184_bytes_with_five_levels_of_depth_each_side(kite_sim, sim_account):
    with open_ticker(kite_sim, sim_account) as ws:
        subscribe(ws, "full", [INFY])

        packet = wait_until(lambda: (p := packets_by_token(ws).get(INFY)) and len(p) == 184 and p)

    ltp = struct.unpack(">I", packet[4:8])[0]
    last_trade_time, oi, oi_high, oi_low, exchange_ts = struct.unpack(">5I", packet[44:64])
    assert abs(exchange_ts - time.time()) < 5
    assert last_trade_time <= exchange_ts + 1
    assert (oi, oi_high, oi_low) == (0, 0, 0)
    levels = [struct.unpack(">IIH", packet[p : p + 10]) for p in range(64, 184, 12)]
    bids, asks = levels[:5], levels[5:]
    assert all(price < ltp for _, price, _ in bids)
    assert all(price > ltp for _, price, _ in asks)
    assert all(quantity > 0 and orders > 0 for quantity, _, orders in levels)


def test_index_packets_are_28_in_quote_and_32_in_full_mode(kite_sim, sim_account):
    with open_ticker(kite_sim, sim_account) as ws:
        subscribe(ws, "quote", [NIFTY_50])
        quote = wait_until(lambda: (p := packets_by_token(ws).get(NIFTY_50)) and len(p) == 28 and p)
        ws.send(json.dumps({"a": "mode", "v": ["full", [NIFTY_50]]}))
        full = wait_until(lambda: (p := packets_by_token(ws).get(NIFTY_50)) and len(p) == 32 and p)

    token, ltp, high, low, open_, close, change = struct.unpack(">6Ii", quote)
    assert open_ > 0
    assert (token, close) == (NIFTY_50, 2596055)
    assert low <= ltp <= high
    assert change == ltp - close
    assert abs(struct.unpack(">I", full[28:32])[0] - time.time()) < 5


def test_one_frame_carries_every_subscribed_instrument(kite_sim, sim_account):
    tokens = [INFY, 738561, 2953217]
    with open_ticker(kite_sim, sim_account) as ws:
        subscribe(ws, "ltp", tokens)

        packets = wait_until(lambda: (p := packets_by_token(ws)) and set(p) == set(tokens) and p)

    assert len(packets) == 3


def test_unsubscribed_instruments_stop_streaming(kite_sim, sim_account):
    with open_ticker(kite_sim, sim_account) as ws:
        subscribe(ws, "ltp", [INFY, 738561])
        ws.send(json.dumps({"a": "unsubscribe", "v": [INFY]}))

        packets = wait_until(lambda: (p := packets_by_token(ws)) and set(p) == {738561} and p)

    assert INFY not in packets


def test_a_one_byte_heartbeat_comes_when_nothing_else_is_sent(kite_sim, sim_account):
    with open_ticker(kite_sim, sim_account) as ws:
        message = ws.recv(timeout=3)

    assert message == b"\x00"


def test_order_updates_of_the_account_arrive_as_json_text(kite_sim, sim_account, kite):
    with open_ticker(kite_sim, sim_account) as ws:
        order_id = kite.place_order(
            variety="regular",
            exchange="NSE",
            tradingsymbol="INFY",
            transaction_type="BUY",
            quantity=1,
            product="MIS",
            order_type="MARKET",
        )

        statuses = []
        while "COMPLETE" not in statuses:
            message = ws.recv(timeout=3)
            if isinstance(message, str):
                update = json.loads(message)
                assert update["type"] == "order"
                assert update["data"]["order_id"] == order_id
                assert update["data"]["user_id"] == sim_account.user_id
                statuses.append(update["data"]["status"])

    assert statuses == ["OPEN", "COMPLETE"]


def test_other_accounts_order_updates_are_not_sent(kite_sim, sim_account):
    other = kite_sim.create_account()
    with open_ticker(kite_sim, sim_account) as ws:
        from kiteconnect import KiteConnect

        client = KiteConnect(other.api_key, access_token=other.access_token, root=kite_sim.api_root)
        order_id = client.place_order(
            variety="regular",
            exchange="NSE",
            tradingsymbol="INFY",
            transaction_type="BUY",
            quantity=1,
            product="MIS",
            order_type="MARKET",
        )
        wait_until(lambda: kite_sim.orders(other.api_key)[0]["status"] == "COMPLETE")
        deadline = time.monotonic() + 0.5
        texts = []
        while time.monotonic() < deadline:
            try:
                message = ws.recv(timeout=0.1)
            except TimeoutError:
                continue
            if isinstance(message, str):
                texts.append(message)

    assert not [t for t in texts if order_id in t]


def test_an_invalid_message_gets_an_error_text(kite_sim, sim_account):
    with open_ticker(kite_sim, sim_account) as ws:
        ws.send("not json")

        message = ws.recv(timeout=3)

    assert json.loads(message)["type"] == "error"


def test_an_invalid_access_token_is_refused_at_the_handshake(kite_sim, sim_account):
    with pytest.raises(InvalidStatus) as raised:
        connect(f"{kite_sim.ws_root}?api_key={sim_account.api_key}&access_token=wrong")

    assert raised.value.response.status_code == 403


def test_feed_silent_sends_nothing_not_even_heartbeats(kite_sim, sim_account):
    with open_ticker(kite_sim, sim_account) as ws:
        subscribe(ws, "ltp", [INFY])
        next_binary_frame(ws)
        kite_sim.set_fault("feed_silent", seconds=1.5)
        time.sleep(0.15)  # a frame already in flight may still land
        while True:
            try:
                ws.recv(timeout=0)
            except TimeoutError:
                break

        with pytest.raises(TimeoutError):
            ws.recv(timeout=1.0)

        assert len(next_binary_frame(ws)) > 1  # and it comes back by itself


def test_feed_disconnect_drops_every_ticker_connection(kite_sim, sim_account):
    with open_ticker(kite_sim, sim_account) as ws:
        wait_until(lambda: kite_sim.ticker_client_count >= 1)

        kite_sim.set_fault("feed_disconnect")

        with pytest.raises(ConnectionClosed):
            while True:
                ws.recv(timeout=3)


def test_a_fourth_connection_for_one_api_key_is_refused(kite_sim, sim_account):
    with ExitStack() as stack:
        for _ in range(3):
            stack.enter_context(open_ticker(kite_sim, sim_account))

        with pytest.raises(InvalidStatus) as raised:
            open_ticker(kite_sim, sim_account)

    assert raised.value.response.status_code == 429
    wait_until(lambda: kite_sim.ticker_client_count == 0)
    with open_ticker(kite_sim, sim_account):
        pass


def test_an_expired_token_keeps_the_open_connection_but_refuses_new_ones(kite_sim, sim_account):
    with open_ticker(kite_sim, sim_account) as ws:
        kite_sim.expire_token(sim_account.api_key)

        assert ws.recv(timeout=3) == b"\x00"  # Kite does not cut a live stream when the session ends
        with pytest.raises(InvalidStatus):
            open_ticker(kite_sim, sim_account)
