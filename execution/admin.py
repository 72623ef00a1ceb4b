"""Orders in admin, view-only: an order changes only through the execution services."""

from django.contrib import admin
from django.http import HttpRequest

from execution.models import EntryHalt, Order


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin[Order]):
    list_display = [
        "id",
        "tag",
        "strategy",
        "account",
        "side",
        "reason",
        "quantity",
        "filled_quantity",
        "status",
        "broker_order_id",
        "fill_price",
        "attempts",
        "created_at",
    ]
    list_filter = ["status", "side", "reason"]
    search_fields = ["tag", "broker_order_id", "strategy__symbol", "strategy__owner__email"]
    list_select_related = ["strategy", "account"]
    ordering = ["-created_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Order | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Order | None = None) -> bool:
        return False


@admin.register(EntryHalt)
class EntryHaltAdmin(admin.ModelAdmin[EntryHalt]):
    """Halts are set and lifted with ``manage.py entries`` (or by X5); listed here."""

    list_display = ["id", "account", "reason", "created_at"]
    list_select_related = ["account"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: EntryHalt | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: EntryHalt | None = None) -> bool:
        return False
