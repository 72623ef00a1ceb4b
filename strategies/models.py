"""Strategies and their state machine (built by the strategies issue), and the
market calendar they are validated and scheduled against: sessions and holidays
per venue are data, edited by operators in admin, never ``if``s in code."""

from datetime import time

from django.conf import settings
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


class Strategy(models.Model):
    """One intraday plan: buy ``quantity`` of ``symbol`` at ``buy_at``, sell at ``sell_at``,
    or exit at once if the price falls to the stop-loss first.

    ``status`` and ``position`` move only by compare-and-set (see services), so two racing
    actors never both win; the fire instants are stored so the scheduler finds what is due
    through an index.
    """

    class Status(models.TextChoices):
        CREATED = "CREATED"
        RUNNING = "RUNNING"
        STOPPED = "STOPPED"
        EXITED = "EXITED"  # final

    class Position(models.TextChoices):
        NONE = "NONE"
        BUYING = "BUYING"
        BOUGHT = "BOUGHT"
        EXITING = "EXITING"
        SOLD = "SOLD"
        EXITED_BY_SL = "EXITED_BY_SL"

    class ExitReason(models.TextChoices):
        SELL = "SELL"
        STOPLOSS = "STOPLOSS"
        STOP = "STOP"
        REJECTED = "REJECTED"
        ABORT = "ABORT"
        TARGET = "TARGET"  # the price reached the take-profit
        TRAIL = "TRAIL"  # the trailing stop, moved up from the entry's stop, was crossed

    class Product(models.TextChoices):
        INTRADAY = "MIS", "Intraday"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="strategies")
    broker_account = models.ForeignKey("brokers.BrokerAccount", on_delete=models.PROTECT, related_name="strategies")
    venue = models.CharField(max_length=8, choices=Venue.choices, help_text="Whose calendar applies.")
    exchange = models.CharField(max_length=8, choices=[(Venue.NSE.value, "NSE"), (Venue.BSE.value, "BSE")])
    symbol = models.CharField(max_length=40)
    quantity = models.PositiveIntegerField()
    product = models.CharField(max_length=8, choices=Product.choices, default=Product.INTRADAY)
    trade_date = models.DateField()
    buy_at = models.TimeField()
    sell_at = models.TimeField()
    stop_loss_price = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    stop_loss_percent = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True)
    # The stop follows the highest price since the fill, this far below it (one of the two, or neither).
    stop_loss_trail_percent = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True)
    stop_loss_trail_points = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    # Exit at market when a tick reaches this (one of the two, or neither).
    take_profit_percent = models.DecimalField(max_digits=6, decimal_places=2, null=True, blank=True)
    take_profit_price = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    # A protective stop order rests at the broker while the position is held (also off per account).
    protective_stop = models.BooleanField(default=True)

    status = models.CharField(max_length=8, choices=Status.choices, default=Status.CREATED)
    position = models.CharField(max_length=12, choices=Position.choices, default=Position.NONE)
    exit_reason = models.CharField(max_length=8, choices=ExitReason.choices, blank=True)
    version = models.PositiveIntegerField(default=0)

    buy_fire_at = models.DateTimeField()
    sell_fire_at = models.DateTimeField()
    buy_fired_at = models.DateTimeField(null=True, blank=True)
    sell_fired_at = models.DateTimeField(null=True, blank=True)
    entry_price = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    # Fixed once the BUY fills (a percentage stop is computed from the fill price then).
    stop_trigger_price = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    # Fixed once the BUY fills, from a percentage or the price given.
    target_price = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    # The highest price since the fill, as a trailing stop last recorded it.
    trail_high_price = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    # Deleted by its owner after it traded: its orders are a broker's record and keep it, hidden.
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "strategies"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(quantity__gt=0), name="strategy_quantity_positive"),
            models.CheckConstraint(condition=models.Q(buy_at__lt=models.F("sell_at")), name="strategy_buy_before_sell"),
            models.CheckConstraint(
                condition=models.Q(buy_fire_at__lt=models.F("sell_fire_at")), name="strategy_buy_fires_first"
            ),
            models.CheckConstraint(
                condition=(
                    models.Q(stop_loss_price__isnull=False, stop_loss_percent__isnull=True)
                    | models.Q(stop_loss_price__isnull=True, stop_loss_percent__isnull=False)
                ),
                name="strategy_one_stop_loss_kind",
            ),
            models.CheckConstraint(
                condition=models.Q(stop_loss_price__isnull=True) | models.Q(stop_loss_price__gt=0),
                name="strategy_stop_loss_price_positive",
            ),
            models.CheckConstraint(
                condition=models.Q(stop_loss_percent__isnull=True)
                | models.Q(stop_loss_percent__gt=0, stop_loss_percent__lt=100),
                name="strategy_stop_loss_percent_in_range",
            ),
            models.CheckConstraint(
                condition=models.Q(stop_loss_trail_percent__isnull=True)
                | models.Q(stop_loss_trail_points__isnull=True),
                name="strategy_one_trail_kind",
            ),
            models.CheckConstraint(
                condition=models.Q(stop_loss_trail_percent__isnull=True)
                | models.Q(stop_loss_trail_percent__gt=0, stop_loss_trail_percent__lt=100),
                name="strategy_trail_percent_in_range",
            ),
            models.CheckConstraint(
                condition=models.Q(stop_loss_trail_points__isnull=True) | models.Q(stop_loss_trail_points__gt=0),
                name="strategy_trail_points_positive",
            ),
            models.CheckConstraint(
                condition=models.Q(take_profit_percent__isnull=True) | models.Q(take_profit_price__isnull=True),
                name="strategy_one_target_kind",
            ),
            models.CheckConstraint(
                condition=models.Q(take_profit_percent__isnull=True) | models.Q(take_profit_percent__gt=0),
                name="strategy_target_percent_positive",
            ),
            models.CheckConstraint(
                condition=models.Q(take_profit_price__isnull=True) | models.Q(take_profit_price__gt=0),
                name="strategy_target_price_positive",
            ),
        ]
        indexes = [
            models.Index(fields=["owner", "-created_at"], name="strategy_owner_recent"),
            # Admin's list filters and symbol search, newest first (its ordering is -id).
            models.Index(fields=["status", "-id"], name="strategy_status_recent"),
            models.Index(fields=["position", "-id"], name="strategy_position_recent"),
            models.Index(fields=["symbol", "-id"], name="strategy_symbol_recent"),
            # The scheduler's "what is due now" scans: only running strategies not yet fired.
            models.Index(
                fields=["buy_fire_at"],
                name="strategy_buy_due",
                condition=models.Q(status="RUNNING", buy_fired_at__isnull=True),
            ),
            models.Index(
                fields=["sell_fire_at"],
                name="strategy_sell_due",
                condition=models.Q(status="RUNNING", sell_fired_at__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.exchange}:{self.symbol} x{self.quantity} {self.trade_date} ({self.status})"


class RunReadiness(models.Model):
    """The morning readiness check's outcome for one run (a strategy's trading day): ready, or
    not with the reason and what the user can do. One row per run (the claim that makes the
    check once-only); a run still not ready at its BUY time is checked again, then skipped."""

    class Status(models.TextChoices):
        PENDING = "PENDING"  # claimed, being checked
        READY = "READY"
        NOT_READY = "NOT_READY"

    class Reason(models.TextChoices):
        LOGIN_REQUIRED = "LOGIN_REQUIRED", "Broker login needed"
        FUNDS_SHORT = "FUNDS_SHORT", "Not enough funds"
        INSTRUMENT_SUSPENDED = "INSTRUMENT_SUSPENDED", "Instrument not tradable"
        AT_CIRCUIT = "AT_CIRCUIT", "Instrument at its circuit limit"
        VENUE_CLOSED = "VENUE_CLOSED", "Venue closed"
        BROKER_UNAVAILABLE = "BROKER_UNAVAILABLE", "Broker unreachable"

    strategy = models.ForeignKey(Strategy, on_delete=models.CASCADE, related_name="readiness")
    broker_account = models.ForeignKey(
        "brokers.BrokerAccount", on_delete=models.CASCADE, related_name="readiness", db_index=False
    )
    day = models.DateField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    reason = models.CharField(max_length=24, choices=Reason.choices, blank=True)
    message = models.CharField(max_length=300, blank=True)
    # What the check saw: the funds needed and available, the instrument's price and band.
    details = models.JSONField(default=dict, blank=True)
    claimed_at = models.DateTimeField()
    checked_at = models.DateTimeField(null=True, blank=True)
    checks = models.PositiveSmallIntegerField(default=0)

    class Meta:
        verbose_name_plural = "run readiness"
        ordering = ["-day", "-id"]
        constraints = [models.UniqueConstraint(fields=["strategy", "day"], name="readiness_one_per_run")]
        indexes = [
            models.Index(fields=["broker_account", "day"], name="readiness_account_day"),
            models.Index(fields=["day", "status"], name="readiness_day_status"),
        ]

    def __str__(self) -> str:
        return f"strategy #{self.strategy_id} {self.day}: {self.status} {self.reason}".rstrip()
