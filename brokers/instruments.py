"""The instrument list the paper broker and the Kite simulator trade: 500 NSE equities and two
indices with plausible prices, shipped as data in the columns of Kite's instruments dump, with
Kite's token scheme (``exchange_token * 256 + 1``; Kite's own tokens first, the rest made up).
Also the one reader of that dump's CSV, which the Kite adapter and ``refresh_instruments`` share."""

import csv
import io
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

from brokers.adapters.base import Instrument

DATA_FILE = Path(__file__).resolve().parent / "data" / "nse_equities.csv"
DUMP_COLUMNS = (
    "instrument_token",
    "exchange_token",
    "tradingsymbol",
    "name",
    "last_price",
    "expiry",
    "strike",
    "tick_size",
    "lot_size",
    "instrument_type",
    "segment",
    "exchange",
)


def instruments_from_csv(text: str) -> list[Instrument]:
    """Kite's instrument dump (``GET /instruments``) as instruments. Rows without a token are
    skipped; a malformed number raises ValueError or ArithmeticError, for the caller to report."""
    return [
        Instrument(
            instrument_token=int(row["instrument_token"]),
            exchange_token=int(row["exchange_token"]),
            exchange=row["exchange"].strip().upper(),
            symbol=row["tradingsymbol"].strip().upper(),
            name=(row.get("name") or "").strip(),
            tick_size=Decimal((row.get("tick_size") or "0").strip()),
            lot_size=int(row.get("lot_size") or 1),
            segment=(row.get("segment") or "").strip(),
            reference_price=Decimal((row.get("last_price") or "0").strip()),
            instrument_type=(row.get("instrument_type") or "EQ").strip(),
        )
        for row in csv.DictReader(io.StringIO(text))
        if (row.get("instrument_token") or "").strip()
    ]


def instruments_to_csv(instruments: Iterable[Instrument]) -> str:
    """Instruments as Kite's dump lists them (equities and indices: no expiry, no strike)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(DUMP_COLUMNS)
    for i in instruments:
        row = [i.instrument_token, i.exchange_token, i.symbol, i.name, i.reference_price, "", 0, i.tick_size]
        writer.writerow([*row, i.lot_size, i.instrument_type, i.segment, i.exchange])
    return buffer.getvalue()


@cache
def load_instruments() -> tuple[Instrument, ...]:
    return tuple(instruments_from_csv(DATA_FILE.read_text(encoding="utf-8")))


@cache
def instruments_by_symbol() -> dict[tuple[str, str], Instrument]:
    return {(i.exchange, i.symbol): i for i in load_instruments()}


@cache
def instruments_by_token() -> dict[int, Instrument]:
    return {i.instrument_token: i for i in load_instruments()}


def find_instrument(exchange: str, symbol: str) -> Instrument | None:
    return instruments_by_symbol().get((exchange.upper(), symbol.upper()))


_REFRESHED_COLUMNS = (
    "exchange_token",
    "exchange",
    "symbol",
    "name",
    "segment",
    "instrument_type",
    "tick_size",
    "lot_size",
    "last_price",
    "refreshed_at",
)


def instruments_store(model: Any, *, exchange: str, instruments: Iterable[Instrument], refreshed_at: datetime) -> int:
    """Upsert one exchange's dump into ``model`` (the Instrument model, or its historical
    version in a migration) by instrument token, then remove that exchange's rows the dump no
    longer lists. The caller holds the transaction. An empty dump changes nothing: a broker
    answering with no rows is an outage, not every instrument delisted. Returns the rows kept."""
    exchange = exchange.upper()
    by_token = {i.instrument_token: i for i in instruments if i.exchange == exchange}  # a repeated token: the last
    if not by_token:
        return 0
    model.objects.bulk_create(
        [
            model(
                instrument_token=i.instrument_token,
                exchange_token=i.exchange_token,
                exchange=i.exchange,
                symbol=i.symbol,
                name=i.name,
                segment=i.segment,
                instrument_type=i.instrument_type,
                tick_size=i.tick_size,
                lot_size=i.lot_size,
                last_price=i.reference_price if i.reference_price > 0 else None,
                refreshed_at=refreshed_at,
            )
            for i in by_token.values()
        ],
        batch_size=2000,
        update_conflicts=True,
        unique_fields=["instrument_token"],
        update_fields=list(_REFRESHED_COLUMNS),
    )
    model.objects.filter(exchange=exchange).exclude(refreshed_at=refreshed_at).delete()
    return len(by_token)
