"""Strategies and their state machine (built by the strategies issue), and the
market calendar they are validated and scheduled against: sessions and holidays
per venue are data, edited by operators in admin, never ``if``s in code."""

from datetime import time

from django.db import models


class Venue(models.TextChoices):
    NSE = "NSE", "National Stock Exchange"
    BSE = "BSE", "BSE"
    # The paper broker's and the Kite simulator's market: trades NSE symbols, keeps its own hours.
    SIM = "SIM", "Simulated exchange"


class MarketSession(models.Model):
    venue = models.CharField(max_length=8, choices=Venue.choices, unique=True)
    opens_at = models.TimeField(default=time(9, 15))
    closes_at = models.TimeField(default=time(15, 30))
    time_zone = models.CharField(max_length=64, default="Asia/Kolkata")
    trading_weekdays = models.CharField(
        max_length=13, default="0,1,2,3,4", help_text="Weekdays the venue trades, 0 = Monday, comma-separated."
    )
    always_open = models.BooleanField(
        default=False, help_text="Open every day at every hour, holidays ignored (for the simulated exchange)."
    )

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(opens_at__lt=models.F("closes_at")), name="session_opens_first"),
        ]

    def __str__(self) -> str:
        if self.always_open:
            return f"{self.venue}: always open"
        return f"{self.venue}: {self.opens_at:%H:%M}-{self.closes_at:%H:%M} {self.time_zone}"

    @property
    def weekdays(self) -> frozenset[int]:
        return frozenset(int(day) for day in self.trading_weekdays.split(",") if day.strip())


class MarketHoliday(models.Model):
    venue = models.CharField(max_length=8, choices=Venue.choices)
    date = models.DateField()
    description = models.CharField(max_length=120)

    class Meta:
        ordering = ["venue", "date"]
        constraints = [models.UniqueConstraint(fields=["venue", "date"], name="one_holiday_per_venue_day")]

    def __str__(self) -> str:
        return f"{self.venue} {self.date:%Y-%m-%d} {self.description}"
