"""Whether an instrument's market is open, as the listener asks it every second: silence
outside market hours is no fault. Cached per venue, since the calendar reads the database."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from strategies import calendar

logger = logging.getLogger(__name__)

CALENDAR_CACHE_SECONDS = 30.0


class MarketHours:
    def __init__(self, *, simulated_venue: bool) -> None:
        self._simulated_venue = simulated_venue
        self._cache: dict[str, tuple[float, bool]] = {}

    def is_open(self, instrument: str) -> bool:
        """Market hours of the instrument's venue (the SIM venue, always open, for the paper
        broker and the Kite simulator); a venue without a calendar counts as open."""
        venue = "SIM" if self._simulated_venue else instrument.partition(":")[0]
        cached = self._cache.get(venue)
        now = time.monotonic()
        if cached is not None and now - cached[0] < CALENDAR_CACHE_SECONDS:
            return cached[1]
        try:
            is_open = calendar.is_open(venue, datetime.now(UTC))
        except LookupError:
            is_open = True
        except Exception:
            logger.exception("market calendar unavailable")
            is_open = True
        self._cache[venue] = (now, is_open)
        return is_open
