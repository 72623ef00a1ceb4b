"""The instrument list the paper broker and the Kite simulator trade: 500 NSE equities and two
indices with plausible prices, shipped as data in the columns of Kite's instruments dump, with
Kite's token scheme (``exchange_token * 256 + 1``; Kite's own tokens first, the rest made up)."""

import csv
from decimal import Decimal
from functools import cache
from pathlib import Path

from brokers.adapters.base import Instrument

DATA_FILE = Path(__file__).resolve().parent / "data" / "nse_equities.csv"


@cache
def load_instruments() -> tuple[Instrument, ...]:
    with DATA_FILE.open(newline="") as handle:
        return tuple(
            Instrument(
                instrument_token=int(row["instrument_token"]),
                exchange_token=int(row["exchange_token"]),
                exchange=row["exchange"],
                symbol=row["tradingsymbol"],
                name=row["name"],
                tick_size=Decimal(row["tick_size"]),
                lot_size=int(row["lot_size"]),
                segment=row["segment"],
                reference_price=Decimal(row["last_price"]),
            )
            for row in csv.DictReader(handle)
        )


@cache
def instruments_by_symbol() -> dict[tuple[str, str], Instrument]:
    return {(i.exchange, i.symbol): i for i in load_instruments()}


@cache
def instruments_by_token() -> dict[int, Instrument]:
    return {i.instrument_token: i for i in load_instruments()}


def find_instrument(exchange: str, symbol: str) -> Instrument | None:
    return instruments_by_symbol().get((exchange.upper(), symbol.upper()))
