"""The market calendar is data: seeded sessions and holidays, editable by operators."""

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from strategies import calendar
from strategies.models import MarketHoliday, MarketSession

pytestmark = pytest.mark.django_db

IST = ZoneInfo("Asia/Kolkata")


def test_weekdays_trade_and_weekends_do_not():
    assert calendar.is_trading_day("NSE", date(2026, 11, 23))  # Monday
    assert not calendar.is_trading_day("NSE", date(2026, 11, 28))  # Saturday
    assert not calendar.is_trading_day("BSE", date(2026, 11, 29))  # Sunday


def test_a_seeded_exchange_holiday_does_not_trade():
    assert not calendar.is_trading_day("NSE", date(2026, 11, 24))  # Guru Nanak Jayanti
    assert not calendar.is_trading_day("BSE", date(2026, 12, 25))


def test_the_session_is_0915_to_1530_in_kolkata():
    session = calendar.session_on("NSE", date(2026, 11, 23))

    assert session is not None
    assert session.opens == datetime(2026, 11, 23, 9, 15, tzinfo=IST)
    assert session.closes == datetime(2026, 11, 23, 15, 30, tzinfo=IST)
    assert session.opens.utcoffset() == timedelta(hours=5, minutes=30)


def test_is_open_converts_any_zone_to_exchange_time():
    utc = ZoneInfo("UTC")

    assert calendar.is_open("NSE", datetime(2026, 11, 23, 3, 45, tzinfo=utc))  # 09:15 IST
    assert not calendar.is_open("NSE", datetime(2026, 11, 23, 3, 44, tzinfo=utc))
    assert not calendar.is_open("NSE", datetime(2026, 11, 23, 10, 1, tzinfo=utc))  # 15:31 IST


def test_the_simulated_exchange_is_open_on_holidays_weekends_and_at_night():
    assert calendar.is_open("SIM", datetime(2026, 11, 24, 23, 59, tzinfo=IST))
    assert calendar.is_open("SIM", datetime(2026, 11, 29, 2, 0, tzinfo=IST))
    assert calendar.is_trading_day("SIM", date(2026, 11, 29))


def test_next_trading_day_skips_weekends_and_holidays():
    assert calendar.next_trading_day("NSE", date(2026, 11, 20)) == date(2026, 11, 23)  # Fri -> Mon
    assert calendar.next_trading_day("NSE", date(2026, 11, 23)) == date(2026, 11, 25)  # skips 24th


def test_an_operator_added_holiday_takes_effect_at_once():
    MarketHoliday.objects.create(venue="NSE", date=date(2026, 11, 23), description="Unscheduled closure")

    assert not calendar.is_trading_day("NSE", date(2026, 11, 23))
    assert calendar.session_on("NSE", date(2026, 11, 23)) is None


def test_operators_can_close_the_simulated_exchange_to_real_hours():
    MarketSession.objects.filter(venue="SIM").update(always_open=False)

    assert not calendar.is_trading_day("SIM", date(2026, 11, 29))


def test_the_exchange_date_is_not_the_utc_date():
    late_utc = datetime(2026, 11, 22, 19, 0, tzinfo=ZoneInfo("UTC"))  # 00:30 IST on the 23rd

    assert calendar.today("NSE", late_utc) == date(2026, 11, 23)


def test_an_unconfigured_venue_is_an_error_not_a_guess():
    with pytest.raises(LookupError):
        calendar.is_trading_day("NYSE", date(2026, 11, 23))
