"""The market calendar's seed (NSE and BSE sessions with their 2026 holidays, and a simulated
exchange open at all hours so demos and tests run any day), shared by the data migration and
the tests, whose transactional cases flush the seeded rows. Later holidays are added in admin."""

from datetime import date, time
from typing import Any

HOLIDAYS_2026 = [
    (date(2026, 1, 15), "Municipal Corporation Election - Maharashtra"),
    (date(2026, 1, 26), "Republic Day"),
    (date(2026, 3, 3), "Holi"),
    (date(2026, 3, 26), "Shri Ram Navami"),
    (date(2026, 3, 31), "Shri Mahavir Jayanti"),
    (date(2026, 4, 3), "Good Friday"),
    (date(2026, 4, 14), "Dr. Baba Saheb Ambedkar Jayanti"),
    (date(2026, 5, 1), "Maharashtra Day"),
    (date(2026, 5, 28), "Bakri Id"),
    (date(2026, 6, 26), "Muharram"),
    (date(2026, 9, 14), "Ganesh Chaturthi"),
    (date(2026, 10, 2), "Mahatma Gandhi Jayanti"),
    (date(2026, 10, 20), "Dussehra"),
    (date(2026, 11, 10), "Diwali-Balipratipada"),
    (date(2026, 11, 24), "Prakash Gurpurb Sri Guru Nanak Dev"),
    (date(2026, 12, 25), "Christmas"),
]


def seed_market_calendar(market_session: Any, market_holiday: Any) -> None:
    """Idempotent: existing rows (an operator's edits included) are left as they are."""
    for venue in ("NSE", "BSE"):
        market_session.objects.get_or_create(
            venue=venue, defaults={"opens_at": time(9, 15), "closes_at": time(15, 30), "always_open": False}
        )
        for day, description in HOLIDAYS_2026:
            market_holiday.objects.get_or_create(venue=venue, date=day, defaults={"description": description})
    market_session.objects.get_or_create(venue="SIM", defaults={"always_open": True})
