"""Operators' read-only views of users' notifications (was a push delivered, to which phones)
and of registered phones; tokens are shown shortened, as they address a person's phone."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from notifications.models import Device, Notification


class ReadOnlyAdmin(admin.ModelAdmin[Any]):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = ["id", "user", "kind", "title", "created_at", "read_at", "pushed_at"]
    list_filter = ["kind"]
    search_fields = ["title", "user__email"]
    raw_id_fields = ["user", "strategy", "order"]
    list_select_related = ["user"]


@admin.register(Device)
class DeviceAdmin(ReadOnlyAdmin):
    list_display = ["id", "user", "token_start", "created_at", "updated_at"]
    search_fields = ["user__email"]
    list_select_related = ["user"]
    exclude = ["token"]
    readonly_fields = ["token_start"]

    @admin.display(description="token")
    def token_start(self, device: Device) -> str:
        return f"{device.token[:12]}…"
