"""Orders as write-ahead intents: a row is committed PENDING, with its own tag, before the broker is called, so
a crash at any moment leaves a tag to look up. The partial unique constraints, whatever workers, locks or
redeliveries do, make a duplicate BUY or a second exit impossible; the entry halt is the kill switch."""

from django.conf import settings
from django.db import models
from django.db.models import Q


class Order(models.Model):
    class Side(models.TextChoices):
        BUY = "BUY"
        SELL = "SELL"

    class Reason(models.TextChoices):
        BUY = "BUY"
        SELL = "SELL"
        STOPLOSS = "STOPLOSS"
        STOP = "STOP"
        ABORT = "ABORT"
        TARGET = "TARGET"
        TRAIL = "TRAIL"
        # Squares off what a lost order that surfaced later filled (either side): not an exit.
        EXCESS = "EXCESS"

    class Status(models.TextChoices):
        PENDING = "PENDING"  # committed, the broker not yet (certainly) called
        PLACED = "PLACED"  # accepted by the broker (B3), not final yet
        UNKNOWN = "UNKNOWN"  # sent, no answer: only a lookup by tag can tell
        COMPLETE = "COMPLETE"
        REJECTED = "REJECTED"
        CANCELLED = "CANCELLED"
        FAILED = "FAILED"  # never reached the broker, or lost and replaced by a new tag

    LIVE = (Status.PENDING, Status.PLACED, Status.UNKNOWN)
    FINAL = (Status.COMPLETE, Status.REJECTED, Status.CANCELLED, Status.FAILED)

    strategy = models.ForeignKey("strategies.Strategy", on_delete=models.PROTECT, related_name="orders")
    account = models.ForeignKey("brokers.BrokerAccount", on_delete=models.PROTECT, related_name="orders")
    side = models.CharField(max_length=4, choices=Side.choices)
    reason = models.CharField(max_length=8, choices=Reason.choices)
    quantity = models.PositiveIntegerField()
    # MARKET for every order but the protective stop: SL-M (or SL) until an exit converts it to MARKET.
    order_type = models.CharField(max_length=6, default="MARKET")
    trigger_price = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    limit_price = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    # Placed as the resting protective stop: the position's one exit order while it is held.
    protective = models.BooleanField(default=False)
    # Accepted modifications (Kite caps them per order).
    modifications = models.PositiveIntegerField(default=0)
    # "AT" + the id in base 36, set in the insert's transaction: never reused, at most 20 alphanumerics.
    tag = models.CharField(max_length=20, unique=True, null=True, blank=True)
    retry_of = models.OneToOneField("self", on_delete=models.PROTECT, null=True, blank=True, related_name="retried_by")
    broker_order_id = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=9, choices=Status.choices, default=Status.PENDING)
    fill_price = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    # What the broker filled: the quantity when COMPLETE, less for a partial fill that was then
    # cancelled or rejected, and set on a FAILED (lost) order that surfaced and filled after all.
    filled_quantity = models.PositiveIntegerField(default=0)
    filled_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)
    # The price a BUY was valued at by the risk limits' check (the last price when claimed): what a
    # live BUY counts towards the day's value until its fill says what it cost.
    reference_price = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    # A BUY delivered after this is refused (the late policy); null: valid until final.
    valid_until = models.DateTimeField(null=True, blank=True)
    # A lost order (FAILED without a definite answer: not found by its tag) may still reach the
    # broker's book later: settlement looks its tag up again until this time (the trading day's end).
    watch_until = models.DateTimeField(null=True, blank=True)
    # When a lost order was found at the broker after all (it was then cancelled or squared off).
    surfaced_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="order_quantity_positive"),
            models.CheckConstraint(
                condition=Q(side="BUY", reason="BUY")
                | Q(side="SELL", reason__in=("SELL", "STOPLOSS", "STOP", "ABORT", "TARGET", "TRAIL"))
                | Q(reason="EXCESS"),
                name="order_reason_matches_side",
            ),
            models.UniqueConstraint(
                fields=["strategy"],
                condition=Q(side="BUY", status__in=("PENDING", "PLACED", "UNKNOWN")),
                name="order_one_live_buy",
            ),
            models.UniqueConstraint(
                fields=["strategy"],
                condition=Q(side="SELL", status__in=("PENDING", "PLACED", "UNKNOWN")),
                name="order_one_live_exit",
            ),
            models.UniqueConstraint(
                fields=["strategy"],
                condition=Q(side="BUY", reason="BUY", status="COMPLETE"),
                name="order_one_filled_buy",
            ),
        ]
        indexes = [
            # Admin's list filters and its search by broker order id, newest first (its ordering is -id).
            models.Index(fields=["status", "-id"], name="order_status_recent"),
            models.Index(fields=["reason", "-id"], name="order_reason_recent"),
            models.Index(fields=["broker_order_id"], name="order_broker_order_id"),
            # Recovery's scan: every order not yet final.
            models.Index(
                fields=["status"], name="order_live", condition=Q(status__in=("PENDING", "PLACED", "UNKNOWN"))
            ),
            # The risk limits' read of an account's BUYs of the day, once before each BUY.
            models.Index(fields=["account", "created_at"], name="order_account_buys", condition=Q(side="BUY")),
            # Settlement's scan for lost orders that may still surface.
            models.Index(fields=["watch_until"], name="order_watched", condition=Q(watch_until__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"{self.tag or '#' + str(self.pk)} {self.reason} x{self.quantity} ({self.status})"

    @property
    def is_live(self) -> bool:
        return self.status in self.LIVE


class EntryHalt(models.Model):
    """New BUYs are refused while a halt covers the account (``account`` null: every
    account, the operator's kill switch); exits always run. Kept in the database, not
    Redis, so that a flush can never lift it. X5 creates one per aborted account."""

    account = models.ForeignKey(
        "brokers.BrokerAccount", on_delete=models.CASCADE, null=True, blank=True, related_name="entry_halts"
    )
    reason = models.CharField(max_length=200)
    # A halt that lapses by itself: the day's loss limit halts until the exchange day ends.
    # Null: until lifted (an operator's, X5's).
    until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["account"], name="entryhalt_one_per_account"),
        ]

    def __str__(self) -> str:
        lapses = "" if self.until is None else f" (until {self.until:%Y-%m-%d %H:%M %Z})"
        return f"halt {'all accounts' if self.account_id is None else self.account_id}: {self.reason}{lapses}"


class RiskLimits(models.Model):
    """A user's risk limits (``account`` null), or one broker account's: each null is no limit.
    The user's count over all their accounts, an account's over that account alone, so the
    stricter of the two is what stops a BUY. Checked before each BUY claims its position."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="risk_limits")
    account = models.OneToOneField(
        "brokers.BrokerAccount", on_delete=models.CASCADE, null=True, blank=True, related_name="risk_limits"
    )
    max_loss_per_day = models.DecimalField(
        max_digits=14,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="Rupees: realized plus unrealized loss of the day that halts entries and exits positions.",
    )
    max_open_positions = models.PositiveIntegerField(null=True, blank=True)
    max_order_value = models.DecimalField(
        max_digits=14, decimal_places=2, null=True, blank=True, help_text="Rupees: quantity times the last price."
    )
    max_day_value = models.DecimalField(
        max_digits=16, decimal_places=2, null=True, blank=True, help_text="Rupees: the day's BUYs together."
    )
    max_orders_per_day = models.PositiveIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    LIMITS = ("max_loss_per_day", "max_open_positions", "max_order_value", "max_day_value", "max_orders_per_day")

    class Meta:
        verbose_name_plural = "risk limits"
        constraints = [
            models.UniqueConstraint(fields=["user"], condition=Q(account__isnull=True), name="risklimits_one_per_user"),
            *(
                models.CheckConstraint(
                    condition=Q(**{f"{name}__isnull": True}) | Q(**{f"{name}__gt": 0}),
                    name=f"risklimits_{name}_positive",
                )
                for name in (
                    "max_loss_per_day",
                    "max_open_positions",
                    "max_order_value",
                    "max_day_value",
                    "max_orders_per_day",
                )
            ),
        ]

    def __str__(self) -> str:
        scope = f"user {self.user_id}" if self.account_id is None else f"account {self.account_id}"
        return f"risk limits of {scope}"
