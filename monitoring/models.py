"""EventLog: every emitted event, the source of each strategy's timeline."""

from django.conf import settings
from django.db import models

from monitoring.events import Event


class EventLog(models.Model):
    code = models.CharField(max_length=4, choices=Event.choices())
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="events"
    )
    strategy = models.ForeignKey(
        "strategies.Strategy", null=True, blank=True, on_delete=models.CASCADE, related_name="events"
    )
    # The order an execution event concerns (E*, B3, B4, L2 and order alerts): an order's
    # history is read from here. SET_NULL: history outlives whatever deletes an order.
    order = models.ForeignKey(
        "execution.Order", null=True, blank=True, on_delete=models.SET_NULL, related_name="events", db_index=False
    )
    message = models.CharField(max_length=500, blank=True)
    payload = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["code", "-created_at"], name="eventlog_code_time"),
            models.Index(fields=["user", "-created_at"], name="eventlog_user_time"),
            models.Index(fields=["strategy", "created_at"], name="eventlog_strategy_timeline"),
            models.Index(fields=["order", "created_at"], name="eventlog_order_history"),
        ]

    def __str__(self) -> str:
        return f"{self.code} at {self.created_at:%Y-%m-%d %H:%M:%S}"

    @property
    def event(self) -> Event:
        return Event.by_code(self.code)


class Alert(models.Model):
    """An incident operators must hear about (L4): opened once per (kind, key), delivered
    to operators once, and resolved when the condition ends (or by an operator). The
    partial unique constraint is what makes "once per incident" hold across processes."""

    class Severity(models.TextChoices):
        WARNING = "warning"
        CRITICAL = "critical"

    kind = models.CharField(max_length=40)
    # What identifies the incident within its kind: "account:5", "NSE:INFY", "order:12".
    key = models.CharField(max_length=200)
    severity = models.CharField(max_length=8, choices=Severity.choices, default=Severity.CRITICAL)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts"
    )
    strategy = models.ForeignKey(
        "strategies.Strategy", null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts"
    )
    message = models.CharField(max_length=500)
    payload = models.JSONField(default=dict, blank=True)
    opened_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution = models.CharField(max_length=200, blank=True)
    # When operators were told of the opening, and of the resolution (every channel done).
    notified_at = models.DateTimeField(null=True, blank=True)
    resolve_notified_at = models.DateTimeField(null=True, blank=True)
    # Each channel's delivery ("email:open": time), so a retry resends only what failed.
    deliveries = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "key"], condition=models.Q(resolved_at__isnull=True), name="alert_one_open_per_incident"
            ),
        ]
        indexes = [
            models.Index(fields=["-opened_at"], name="alert_open_time"),
            models.Index(fields=["-opened_at"], condition=models.Q(resolved_at__isnull=True), name="alert_open_only"),
        ]

    def __str__(self) -> str:
        state = "resolved" if self.resolved_at else "open"
        return f"{self.kind} {self.key} ({state})"

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None
