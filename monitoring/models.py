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
