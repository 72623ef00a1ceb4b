"""The charges estimate against Zerodha's own worked example and its per-order brokerage cap,
every figure computed by hand from the published intraday-equity schedule."""

from datetime import date
from decimal import Decimal

import pytest

from execution.charges import Fill, charge_schedule_on, charge_schedules, charges_estimate

DAY = date(2026, 11, 23)


def test_zerodhas_example_buy_1000_at_100_sell_at_110_on_nse():
    # Given Zerodha's calculator example: 1000 shares bought at 100 and sold at 110, intraday, NSE.
    fills = [Fill("BUY", 1000, Decimal("100")), Fill("SELL", 1000, Decimal("110"))]

    charges = charges_estimate(fills=fills, exchange="NSE", day=DAY)

    # Then, by hand: brokerage 0.03% of 1,00,000 is 30 and of 1,10,000 is 33, each capped at 20;
    assert charges.brokerage == Decimal("40")
    # STT 0.025% of the sell's 1,10,000 is 27.50, billed rounded to the rupee;
    assert charges.stt == Decimal("28")
    # NSE's 0.00297% of the turnover 2,10,000; SEBI's Rs 10 a crore of it;
    assert charges.transaction == Decimal("6.237")
    assert charges.sebi == Decimal("0.21")
    # stamp duty 0.003% of the buy's 1,00,000; GST 18% of (40 + 0.21 + 6.237).
    assert charges.stamp_duty == Decimal("3")
    assert charges.gst == Decimal("8.36046")
    assert charges.total == Decimal("85.80746")
    # Net of the 10,000 gross: 9,914.19 at display.
    assert (Decimal(10000) - charges.total).quantize(Decimal("0.01")) == Decimal("9914.19")


def test_a_small_order_pays_the_rate_not_the_cap_and_a_buy_pays_no_stt():
    charges = charges_estimate(fills=[Fill("BUY", 10, Decimal("100"))], exchange="NSE", day=DAY)

    assert charges.brokerage == Decimal("0.30")  # 0.03% of 1,000
    assert charges.stt == 0
    assert charges.stamp_duty == Decimal("0.03")


def test_bse_has_its_own_transaction_rate():
    charges = charges_estimate(fills=[Fill("SELL", 100, Decimal("1000"))], exchange="BSE", day=DAY)

    assert charges.transaction == Decimal("3.75")  # 0.00375% of 1,00,000
    assert charges.stamp_duty == 0


def test_a_day_takes_the_latest_schedule_started_on_or_before_it(tmp_path):
    newer = """
[[schedule]]
effective_from = "2030-01-01"
brokerage_rate = "0.0002"
brokerage_cap_per_order = "15"
stt_sell_rate = "0.00025"
transaction_rate = { NSE = "0.00003" }
sebi_rate = "0.000001"
stamp_buy_rate = "0.00003"
gst_rate = "0.18"
"""
    path = tmp_path / "charges.toml"
    path.write_text(newer + newer.replace("2030-01-01", "2024-10-01").replace('"15"', '"20"'))

    schedules = charge_schedules(path)

    assert [s.effective_from for s in schedules] == [date(2024, 10, 1), date(2030, 1, 1)]
    assert schedules[0].stt_round_to is None and schedules[0].brokerage_cap_per_order == 20
    assert charge_schedule_on(DAY).effective_from <= DAY


def test_a_rate_written_as_a_float_is_refused(tmp_path):
    path = tmp_path / "charges.toml"
    path.write_text('[[schedule]]\neffective_from = "2024-10-01"\nbrokerage_rate = 0.0003\n')

    with pytest.raises(ValueError, match="strings"):
        charge_schedules(path)
