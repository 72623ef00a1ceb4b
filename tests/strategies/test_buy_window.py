"""The BUY's validity window, the one rule that scheduling, execution and recovery ask."""

from datetime import UTC, datetime, timedelta

from strategies.buy_window import buy_valid_until, buy_window_earliest_fire_at, buy_window_open

DUE = datetime(2026, 3, 2, 4, 30, tzinfo=UTC)


def test_a_buy_may_start_until_its_grace_has_passed_and_not_after(settings):
    settings.BUY_GRACE_SECONDS = 30

    assert buy_window_open(fire_at=DUE, now=DUE)
    assert buy_window_open(fire_at=DUE, now=DUE + timedelta(seconds=30))
    assert not buy_window_open(fire_at=DUE, now=DUE + timedelta(seconds=30, microseconds=1))


def test_an_order_is_asked_by_the_end_of_the_window_it_recorded(settings):
    settings.BUY_GRACE_SECONDS = 30
    valid_until = buy_valid_until(DUE)

    assert valid_until == DUE + timedelta(seconds=30)
    assert buy_window_open(valid_until=valid_until, now=valid_until)
    assert not buy_window_open(valid_until=valid_until, now=valid_until + timedelta(microseconds=1))


def test_the_earliest_due_time_still_open_is_the_window_back_from_now(settings):
    settings.BUY_GRACE_SECONDS = 30
    now = DUE + timedelta(minutes=5)

    earliest = buy_window_earliest_fire_at(now)

    assert buy_window_open(fire_at=earliest, now=now)
    assert not buy_window_open(fire_at=earliest - timedelta(microseconds=1), now=now)
