from django.contrib import admin
from django.http import HttpRequest

from strategies.models import MarketHoliday, MarketSession, Strategy


@admin.register(MarketSession)
class MarketSessionAdmin(admin.ModelAdmin[MarketSession]):
    list_display = ["venue", "opens_at", "closes_at", "time_zone", "trading_weekdays", "always_open"]


@admin.register(MarketHoliday)
class MarketHolidayAdmin(admin.ModelAdmin[MarketHoliday]):
    list_display = ["date", "venue", "description"]
    list_filter = ["venue"]
    date_hierarchy = "date"
    search_fields = ["description"]


@admin.register(Strategy)
class StrategyAdmin(admin.ModelAdmin[Strategy]):
    """View-only: a strategy's state changes only through its services (operator actions
    such as stop and exit-now go through them too)."""

    list_display = [
        "id",
        "owner",
        "exchange",
        "symbol",
        "quantity",
        "trade_date",
        "buy_at",
        "sell_at",
        "status",
        "position",
        "exit_reason",
    ]
    list_filter = ["status", "position", "venue", "trade_date"]
    search_fields = ["symbol", "owner__email"]
    list_select_related = ["owner", "broker_account"]
    date_hierarchy = "trade_date"
    ordering = ["-created_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Strategy | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Strategy | None = None) -> bool:
        return False
