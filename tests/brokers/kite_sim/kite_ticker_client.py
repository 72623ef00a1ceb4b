"""Runs the official ``KiteTicker`` against a ticker URL for a few seconds and writes
one JSON line per event to stdout. A separate process because KiteTicker runs on
Twisted, whose reactor cannot be restarted inside one test process.

usage: kite_ticker_client.py WS_ROOT API_KEY ACCESS_TOKEN SECONDS MODE TOKEN [TOKEN ...]"""

import json
import sys
from typing import Any

from kiteconnect import KiteTicker
from twisted.internet import reactor as twisted_reactor

reactor: Any = twisted_reactor  # Twisted's reactor is installed at import time and typed loosely


def emit(event: str, **data: object) -> None:
    sys.stdout.write(json.dumps({"event": event, **data}, default=str) + "\n")
    sys.stdout.flush()


def main() -> None:
    ws_root, api_key, access_token, seconds, mode, *tokens = sys.argv[1:]
    instrument_tokens = [int(t) for t in tokens]
    ticker = KiteTicker(api_key, access_token, root=ws_root, reconnect=False)

    def on_connect(ws: KiteTicker, response: object) -> None:
        ws.subscribe(instrument_tokens)
        ws.set_mode(mode, instrument_tokens)
        emit("connected")

    ticker.on_connect = on_connect
    ticker.on_ticks = lambda ws, ticks: emit("ticks", ticks=ticks)
    ticker.on_order_update = lambda ws, data: emit("order", data=data)
    ticker.on_error = lambda ws, code, reason: emit("error", code=code, reason=str(reason))
    ticker.on_close = lambda ws, code, reason: emit("close", code=code, reason=str(reason))
    reactor.callLater(float(seconds), reactor.stop)
    ticker.connect()


if __name__ == "__main__":
    main()
