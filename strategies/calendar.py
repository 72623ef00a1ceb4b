"""The market calendar: whether a venue trades on a day, its session in aware
datetimes, and the next trading day. Exchange times are wall-clock times of the
venue's zone (Asia/Kolkata for NSE/BSE); everything returned is timezone-aware."""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from strategies.models import MarketHoliday, MarketSession

MAX_LOOKAHEAD_DAYS = 31


@dataclass(frozen=True)
class Session:
    opens: datetime
    closes: datetime

    def contains(self, moment: datetime) -> bool:
        return self.opens <= moment <= self.closes


def _session(venue: str) -> MarketSession:
    try:
        return MarketSession.objects.get(venue=venue)
    except MarketSession.DoesNotExist:
        raise LookupError(f"no market session is configured for venue {venue!r}") from None


def venue_zone(venue: str) -> ZoneInfo:
    return ZoneInfo(_session(venue).time_zone)


def is_trading_day(venue: str, day: date) -> bool:
    session = _session(venue)
    if session.always_open:
        return True
    if day.weekday() not in session.weekdays:
        return False
    return not MarketHoliday.objects.filter(venue=venue, date=day).exists()


def session_on(venue: str, day: date) -> Session | None:
    """The venue's trading session on ``day``, or None when it does not trade."""
    session = _session(venue)
    zone = ZoneInfo(session.time_zone)
    if session.always_open:
        return Session(datetime.combine(day, time.min, zone), datetime.combine(day, time.max, zone))
    if not is_trading_day(venue, day):
        return None
    return Session(datetime.combine(day, session.opens_at, zone), datetime.combine(day, session.closes_at, zone))


def is_open(venue: str, moment: datetime) -> bool:
    local = moment.astimezone(venue_zone(venue))
    session = session_on(venue, local.date())
    return session is not None and session.contains(local)


def today(venue: str, now: datetime) -> date:
    """The venue's calendar date at ``now`` (not the server's, not UTC's)."""
    return now.astimezone(venue_zone(venue)).date()


def next_trading_day(venue: str, after: date) -> date:
    """The first trading day strictly after ``after``."""
    day = after
    for _ in range(MAX_LOOKAHEAD_DAYS):
        day += timedelta(days=1)
        if is_trading_day(venue, day):
            return day
    raise LookupError(f"{venue} has no trading day within {MAX_LOOKAHEAD_DAYS} days after {after}")
