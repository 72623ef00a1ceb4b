"""A user's notifications (their strategies' alerts, exits, broker token expiry and readiness
problems), each read or unread, and the phones (FCM registration tokens) they are pushed to."""

from django.conf import settings
from django.db import models


class Notification(models.Model):
    class Kind(models.TextChoices):
        ALERT = "alert"
        EXIT = "exit"
        TOKEN_EXPIRY = "token_expiry"  # noqa: S105 - a kind, not a secret
        READINESS = "readiness"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    title = models.CharField(max_length=120)
    body = models.CharField(max_length=500, blank=True)
    strategy = models.ForeignKey(
        "strategies.Strategy", null=True, blank=True, on_delete=models.SET_NULL, related_name="notifications"
    )
    # No index of its own: orders are kept, never deleted, so nothing looks notifications up by order.
    order = models.ForeignKey(
        "execution.Order", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)
    # When every phone of the user had its push (or none could take it); null while one is due.
    pushed_at = models.DateTimeField(null=True, blank=True)
    # Each device's outcome ("<device id>": "sent" / "dead" / "failed: ..."), so a retry
    # pushes only to the phones that have not had it.
    deliveries = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["user", "-created_at", "-id"], name="notification_feed"),
            models.Index(
                fields=["user", "-created_at", "-id"],
                condition=models.Q(read_at__isnull=True),
                name="notification_unread_feed",
            ),
            models.Index(
                fields=["created_at"], condition=models.Q(pushed_at__isnull=True), name="notification_unpushed"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind}: {self.title}"


class Device(models.Model):
    """A phone that receives pushes: its FCM registration token, unique, so a token that
    signs in as another user moves to that user instead of reaching both."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="devices")
    token = models.CharField(max_length=512, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"device #{self.pk} of user #{self.user_id}"
