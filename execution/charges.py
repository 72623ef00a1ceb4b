"""An estimate of what a broker and the state take from intraday equity trades, from the schedule
kept as data in ``execution/data/charges.toml`` (Zerodha's published rates): net P&L is P&L less
these. Exact Decimal arithmetic; only the STT is rounded, as the contract note rounds it."""

import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from pathlib import Path

SCHEDULE_FILE = Path(__file__).resolve().parent / "data" / "charges.toml"
ZERO = Decimal(0)


@dataclass(frozen=True)
class ChargeSchedule:
    effective_from: date
    brokerage_rate: Decimal
    brokerage_cap_per_order: Decimal
    stt_sell_rate: Decimal
    stt_round_to: Decimal | None
    transaction_rate: dict[str, Decimal]
    sebi_rate: Decimal
    stamp_buy_rate: Decimal
    gst_rate: Decimal


@dataclass(frozen=True)
class Fill:
    """One executed order as the charges see it: its side and what it traded."""

    side: str  # "BUY" or "SELL"
    quantity: int
    price: Decimal

    @property
    def value(self) -> Decimal:
        return self.price * self.quantity


@dataclass(frozen=True)
class Charges:
    brokerage: Decimal = ZERO
    stt: Decimal = ZERO
    transaction: Decimal = ZERO
    sebi: Decimal = ZERO
    stamp_duty: Decimal = ZERO
    gst: Decimal = ZERO

    @property
    def total(self) -> Decimal:
        return self.brokerage + self.stt + self.transaction + self.sebi + self.stamp_duty + self.gst

    def __add__(self, other: "Charges") -> "Charges":
        return Charges(
            brokerage=self.brokerage + other.brokerage,
            stt=self.stt + other.stt,
            transaction=self.transaction + other.transaction,
            sebi=self.sebi + other.sebi,
            stamp_duty=self.stamp_duty + other.stamp_duty,
            gst=self.gst + other.gst,
        )


def _decimal(raw: object) -> Decimal:
    if not isinstance(raw, str):  # a TOML float would carry binary noise into money
        raise ValueError(f"charge rates are written as strings, not {raw!r}")
    return Decimal(raw)


@cache
def charge_schedules(path: Path = SCHEDULE_FILE) -> tuple[ChargeSchedule, ...]:
    """Every schedule of the data file, oldest first (read once per process)."""
    with path.open("rb") as handle:
        document = tomllib.load(handle)
    schedules = []
    for row in document["schedule"]:
        round_to = row.get("stt_round_to")
        schedules.append(
            ChargeSchedule(
                effective_from=date.fromisoformat(row["effective_from"]),
                brokerage_rate=_decimal(row["brokerage_rate"]),
                brokerage_cap_per_order=_decimal(row["brokerage_cap_per_order"]),
                stt_sell_rate=_decimal(row["stt_sell_rate"]),
                stt_round_to=None if round_to is None else _decimal(round_to),
                transaction_rate={exchange: _decimal(rate) for exchange, rate in row["transaction_rate"].items()},
                sebi_rate=_decimal(row["sebi_rate"]),
                stamp_buy_rate=_decimal(row["stamp_buy_rate"]),
                gst_rate=_decimal(row["gst_rate"]),
            )
        )
    return tuple(sorted(schedules, key=lambda schedule: schedule.effective_from))


def charge_schedule_on(day: date) -> ChargeSchedule:
    """The schedule in effect on ``day``: the latest that started on or before it (the oldest
    for a day before every schedule, so an estimate is never missing)."""
    schedules = charge_schedules()
    current = schedules[0]
    for schedule in schedules:
        if schedule.effective_from <= day:
            current = schedule
    return current


def charges_estimate(*, fills: Iterable[Fill], exchange: str, day: date) -> Charges:
    """The charges of one instrument's executed orders on one day (one contract note's line):
    brokerage per order, STT on the sells, stamp duty on the buys, the turnover fees, and GST."""
    schedule = charge_schedule_on(day)
    brokerage = buy_value = sell_value = ZERO
    for fill in fills:
        if fill.quantity <= 0:
            continue
        brokerage += min(fill.value * schedule.brokerage_rate, schedule.brokerage_cap_per_order)
        if fill.side == "BUY":
            buy_value += fill.value
        else:
            sell_value += fill.value
    turnover = buy_value + sell_value
    stt = sell_value * schedule.stt_sell_rate
    if schedule.stt_round_to is not None:
        stt = stt.quantize(schedule.stt_round_to, rounding=ROUND_HALF_UP)
    transaction = turnover * schedule.transaction_rate.get(exchange, ZERO)
    sebi = turnover * schedule.sebi_rate
    return Charges(
        brokerage=brokerage,
        stt=stt,
        transaction=transaction,
        sebi=sebi,
        stamp_duty=buy_value * schedule.stamp_buy_rate,
        gst=(brokerage + sebi + transaction) * schedule.gst_rate,
    )
