"""The simulator's ticker holds Kite's limits: 3,000 instruments on one connection (a
subscription past them is refused with an error text, the first 3,000 keep streaming) and
three connections per API key (the fourth handshake refused; see test_ticker_frames)."""

import json
from typing import Any

from brokers.kite_sim.ticker import MAX_TOKENS_PER_CONNECTION
from tests.brokers.kite_sim.test_ticker_frames import INFY, NIFTY_50, open_ticker, packets_by_token, subscribe

UNKNOWN = 90_000_000  # tokens no instrument has: they count against the limit and stream nothing


def fill(ws, count: int) -> list[int]:
    """Subscribe ``count`` unknown tokens: a full connection without a frame to read through."""
    tokens = list(range(UNKNOWN, UNKNOWN + count))
    ws.send(json.dumps({"a": "subscribe", "v": tokens}))
    return tokens


def next_text(ws) -> Any:
    while True:
        message = ws.recv(timeout=3)
        if isinstance(message, str):
            return json.loads(message)


def test_the_3001st_instrument_on_a_connection_is_refused_and_the_first_3000_stream_on(kite_sim, sim_account):
    with open_ticker(kite_sim, sim_account) as ws:
        fill(ws, MAX_TOKENS_PER_CONNECTION - 1)
        subscribe(ws, "ltp", [INFY])  # the 3,000th

        subscribe(ws, "ltp", [NIFTY_50])  # the 3,001st

        assert next_text(ws) == {"type": "error", "data": "Maximum 3000 instruments per connection"}
        for _ in range(3):
            assert set(packets_by_token(ws)) == {INFY}


def test_unsubscribing_frees_room_on_a_full_connection(kite_sim, sim_account):
    with open_ticker(kite_sim, sim_account) as ws:
        tokens = fill(ws, MAX_TOKENS_PER_CONNECTION)
        ws.send(json.dumps({"a": "unsubscribe", "v": tokens[:1]}))

        subscribe(ws, "ltp", [INFY])

        assert set(packets_by_token(ws)) == {INFY}


def test_each_connection_of_a_key_carries_its_own_3000(kite_sim, sim_account):
    with open_ticker(kite_sim, sim_account) as full, open_ticker(kite_sim, sim_account) as other:
        fill(full, MAX_TOKENS_PER_CONNECTION)

        subscribe(other, "ltp", [INFY])

        assert set(packets_by_token(other)) == {INFY}
