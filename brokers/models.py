"""Broker accounts with their credentials encrypted at rest, the paper broker's
order book (the paper broker keeps each account's orders in the database, like a
real broker's book, so that orders survive restarts and are found by their tag), and
the instruments of the broker's daily dump that the symbol search reads."""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.indexes import GistIndex
from django.db import models

from brokers.adapters.base import BrokerOrderStatus, OrderType, Product, Side
from brokers.fields import EncryptedTextField


class BrokerAccount(models.Model):
    class Kind(models.TextChoices):
        PAPER = "paper", "Paper (simulated)"
        KITE = "kite", "Zerodha Kite Connect"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        LOGIN_REQUIRED = "login_required", "Login required"
        AUTH_FAILED = "auth_failed", "Credentials refused"
        TOKEN_EXPIRED = "token_expired", "Session expired"
        DISABLED = "disabled", "Disabled"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="broker_accounts")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    label = models.CharField(max_length=64)
    api_key = EncryptedTextField(blank=True, default="")
    api_secret = EncryptedTextField(blank=True, default="")
    access_token = EncryptedTextField(blank=True, default="")
    # Kite sessions die at 06:00 Asia/Kolkata the next morning; null for brokers without sessions.
    token_expires_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.LOGIN_REQUIRED)
    broker_user_id = models.CharField(max_length=64, blank=True)
    last_validated_at = models.DateTimeField(null=True, blank=True)
    # Off: no protective stop order rests at the broker for this account's positions.
    protective_stops = models.BooleanField(default=True)
    # Deleted by its owner (or with their account) while strategies or orders on record refer to
    # it: the row stays for them, erased and disabled, and the owner no longer sees it.
    deleted_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "label"], name="brokeraccount_owner_label_unique"),
        ]
        indexes = [
            # The expiry sweep and the engine's "which accounts can trade" both filter on these.
            models.Index(fields=["status", "token_expires_at"], name="brokeraccount_status_expiry"),
        ]

    def __str__(self) -> str:
        return f"{self.label} ({self.kind})"


class PaperOrder(models.Model):
    """One order in a paper account's book. Tags are not unique, exactly as at a real
    broker: a duplicated tag shows up as two orders, never as a silently merged one."""

    account = models.ForeignKey(BrokerAccount, on_delete=models.CASCADE, related_name="paper_orders")
    tag = models.CharField(max_length=20)
    exchange = models.CharField(max_length=10)
    symbol = models.CharField(max_length=40)
    side = models.CharField(max_length=4, choices=[(s.value, s.value) for s in Side])
    order_type = models.CharField(max_length=6, choices=[(t.value, t.value) for t in OrderType])
    product = models.CharField(max_length=8, choices=[(p.value, p.value) for p in Product])
    quantity = models.PositiveIntegerField()
    limit_price = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    trigger_price = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    modifications = models.PositiveIntegerField(default=0)
    # Market orders are priced when placed and complete once the simulated latency has passed.
    fill_price = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    fill_due_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(
        max_length=10, choices=[(s.value, s.value) for s in BrokerOrderStatus], default=BrokerOrderStatus.OPEN.value
    )
    status_message = models.CharField(max_length=200, blank=True)
    filled_quantity = models.PositiveIntegerField(default=0)
    average_price = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    placed_at = models.DateTimeField()
    filled_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["placed_at", "id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(quantity__gt=0), name="paperorder_quantity_positive"),
        ]
        indexes = [
            models.Index(fields=["account", "tag"], name="paperorder_account_tag"),
            models.Index(fields=["account", "status"], name="paperorder_account_status"),
        ]

    def __str__(self) -> str:
        return f"{self.side} {self.quantity} {self.exchange}:{self.symbol} ({self.status})"


class Instrument(models.Model):
    """One tradable instrument as the broker's daily dump lists it (Kite's columns), which
    the symbol search reads. Refreshed each morning; a row the latest dump of its exchange no
    longer lists is removed (strategies name their instrument by exchange and symbol)."""

    # Kite's tokens fill 32 unsigned bits: past a PostgreSQL integer.
    instrument_token = models.BigIntegerField(unique=True)
    exchange_token = models.BigIntegerField()
    exchange = models.CharField(max_length=10)
    symbol = models.CharField(max_length=40, help_text="Kite's tradingsymbol.")
    name = models.CharField(max_length=120, blank=True)
    segment = models.CharField(max_length=16)
    instrument_type = models.CharField(max_length=8)
    tick_size = models.DecimalField(max_digits=12, decimal_places=4)
    lot_size = models.PositiveIntegerField()
    # The dump's own price, shown when no live tick is known; null when the dump gives none.
    last_price = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    refreshed_at = models.DateTimeField()

    class Meta:
        ordering = ["exchange", "symbol"]
        indexes = [
            # Prefix search: LIKE 'INF%' on the symbol, then on the name (the dump writes both in upper case).
            models.Index(fields=["symbol"], opclasses=["varchar_pattern_ops"], name="instrument_symbol_prefix"),
            models.Index(fields=["name"], opclasses=["varchar_pattern_ops"], name="instrument_name_prefix"),
            # Fuzzy search (pg_trgm): GiST rather than GIN, for its nearest-first scan that stops
            # after the few results asked for; GIN reads every candidate a short query has. A wider
            # signature than the default: fewer false candidates, a nearest-first scan several
            # times faster over a whole exchange's list.
            GistIndex(fields=["symbol"], opclasses=["gist_trgm_ops(siglen=256)"], name="instrument_symbol_trgm"),
            GistIndex(fields=["name"], opclasses=["gist_trgm_ops(siglen=256)"], name="instrument_name_trgm"),
        ]

    def __str__(self) -> str:
        return f"{self.exchange}:{self.symbol}"
