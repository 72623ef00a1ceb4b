"""Instrument search latency: p50/p99 of ``GET /api/v1/instruments/`` at 50 requests/s over a
whole-exchange-sized list, against a trivial authenticated endpoint (the user's broker accounts:
the same JWT check and one small query) at the same rate in the same run.

    .venv/bin/python bench/instrument_search.py [--instruments 9000] [--seconds 20] [--rate 50]

The list is the shipped NSE list topped up with synthetic equities (made-up symbols and names,
Kite's columns and token scheme) to ``--instruments`` rows, loaded by ``manage.py
refresh_instruments --file`` as an operator would; the shipped instruments have a last tick in
Redis, the synthetic ones only the dump's price. Queries rotate through symbol prefixes of one to
four letters, whole symbols, misspelt symbols and words of names, on NSE. Server, database and
the open-loop generator are ``bench/api_latency.py``'s. Writes bench/results/instrument_search.json.
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from algotrader import redis_keys  # noqa: E402
from algotrader.processes import manage  # noqa: E402
from bench.api_latency import RESULTS, Bench, Endpoint, run_and_report  # noqa: E402
from brokers.adapters.base import Instrument  # noqa: E402
from brokers.instruments import instruments_to_csv, load_instruments  # noqa: E402

SEED = 18
QUERIES = 1000  # distinct queries a phase cycles through
SEARCH = "/api/v1/instruments/"
_SYLLABLES = "AB AL AN AR BA BH CH DE DI GA HI IN JA KA KO LA MA ME MO NA NI OR PA PO RA RE SA SH SU TA TE TR UN VA"
_WORDS = [
    "AGRO",
    "AUTO",
    "BHARAT",
    "CAPITAL",
    "CEMENT",
    "CHEMICALS",
    "ENERGY",
    "ENGINEERING",
    "FINANCE",
    "FOODS",
    "GLOBAL",
    "HOLDINGS",
    "INDUSTRIES",
    "INFRA",
    "METALS",
    "MOTORS",
    "PHARMA",
    "POWER",
    "SOLAR",
    "SOFTWARE",
    "STEEL",
    "SYSTEMS",
    "TECHNOLOGIES",
    "TEXTILES",
    "TRADING",
    "VENTURES",
]


def instrument_list(size: int, rng: random.Random) -> list[Instrument]:
    """The shipped NSE list, then made-up equities until ``size`` rows (tokens past the shipped ones)."""
    instruments = [i for i in load_instruments() if i.exchange == "NSE"]
    taken = {i.symbol for i in instruments}
    syllables = _SYLLABLES.split()
    while len(instruments) < size:
        symbol = "".join(rng.choice(syllables) for _ in range(rng.randint(2, 5)))[: rng.randint(3, 10)]
        if symbol in taken:
            continue
        taken.add(symbol)
        exchange_token = 100_000 + len(instruments)
        instruments.append(
            Instrument(
                instrument_token=exchange_token * 256 + 1,
                exchange_token=exchange_token,
                exchange="NSE",
                symbol=symbol,
                name=" ".join([symbol, *rng.sample(_WORDS, rng.randint(1, 2))]),
                tick_size=Decimal(rng.choice(["0.05", "0.1", "0.01"])),
                lot_size=1,
                segment="NSE",
                reference_price=Decimal(f"{rng.uniform(5, 5000):.2f}"),
            )
        )
    return instruments


def queries(instruments: list[Instrument], rng: random.Random) -> dict[str, list[str]]:
    """Search paths by kind: what a trader types (prefixes, whole symbols) and what only the
    fuzzy match finds (a slip of two letters, a word of the company's name in lower case)."""
    equities = [i for i in instruments if i.segment != "INDICES"]
    kinds: dict[str, list[str]] = {"prefix": [], "fuzzy": [], "mixed": []}
    for _ in range(QUERIES):
        i = rng.choice(equities)
        if rng.random() < 0.7:
            kind, query = "prefix", i.symbol[: rng.randint(1, 4)] if rng.random() < 0.8 else i.symbol
        elif len(i.symbol) >= 5 and rng.random() < 0.5:
            at = rng.randint(1, len(i.symbol) - 2)
            kind, query = "fuzzy", i.symbol[:at] + i.symbol[at + 1] + i.symbol[at] + i.symbol[at + 2 :]
        else:
            words = [w for w in i.name.split() if len(w) >= 4] or [i.symbol]
            kind, query = "fuzzy", rng.choice(words).lower()
        path = f"{SEARCH}?{urlencode({'q': query, 'exchange': 'NSE'})}"
        kinds[kind].append(path)
        kinds["mixed"].append(path)
    return kinds


class InstrumentSearchBench(Bench):
    name = "instrument_search"

    def seed(self) -> None:
        import redis

        self.log_in()
        rng = random.Random(SEED)
        self.instruments = instrument_list(self.args.instruments, rng)
        self.queries = queries(self.instruments, rng)
        dump = RESULTS / "logs" / self.name / "instruments.csv"
        dump.parent.mkdir(parents=True, exist_ok=True)
        dump.write_text(instruments_to_csv(self.instruments))
        self.group.start("refresh", manage("refresh_instruments", "--exchange", "NSE", "--file", str(dump)))
        if self.group.processes["refresh"].wait(timeout=300) != 0:
            sys.exit(f"refresh_instruments failed:\n{self.group.log('refresh')}")
        client = redis.Redis.from_url(self.args.redis_url)
        with client.pipeline(transaction=False) as pipe:
            for i in load_instruments():
                key = redis_keys.price(i.exchange, i.symbol)
                pipe.hset(key, mapping={"price": str(i.reference_price), "ts": time.time()})
            pipe.execute()

    def endpoints(self) -> list[Endpoint]:
        rate = self.args.rate
        return [
            Endpoint("broker accounts (baseline)", "GET", "/api/v1/broker-accounts/", rate),
            Endpoint("search: prefixes", "GET", SEARCH, rate, paths=tuple(self.queries["prefix"])),
            Endpoint("search: fuzzy only", "GET", SEARCH, rate, paths=tuple(self.queries["fuzzy"])),
            Endpoint("search: mixed", "GET", SEARCH, rate, paths=tuple(self.queries["mixed"])),
        ]

    def setup(self) -> dict[str, Any]:
        return {
            "instruments": len(self.instruments),
            "instruments_with_a_tick": sum(1 for i in load_instruments() if i.exchange == "NSE"),
            "distinct_queries": {kind: len(set(paths)) for kind, paths in self.queries.items()},
            "target": "p99 under 20 ms at 50 requests/s",
        }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/algotrader_instruments_bench")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/6")
    parser.add_argument("--instruments", type=int, default=9000, help="rows in the list (the whole NSE: ~2,000-9,000)")
    parser.add_argument("--seconds", type=float, default=20, help="load per endpoint")
    parser.add_argument("--rate", type=float, default=50, help="requests a second, every endpoint")
    args = parser.parse_args(argv)
    if args.redis_url.rsplit("/", 1)[-1] in {"", "0"}:
        sys.exit("--redis-url must name a Redis database of the benchmark's own (it is flushed)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))  # still stop the web process
    return run_and_report(InstrumentSearchBench(args))


if __name__ == "__main__":
    main()
