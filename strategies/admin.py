from django.contrib import admin

from strategies.models import MarketHoliday, MarketSession


@admin.register(MarketSession)
class MarketSessionAdmin(admin.ModelAdmin[MarketSession]):
    list_display = ["venue", "opens_at", "closes_at", "time_zone", "trading_weekdays", "always_open"]


@admin.register(MarketHoliday)
class MarketHolidayAdmin(admin.ModelAdmin[MarketHoliday]):
    list_display = ["date", "venue", "description"]
    list_filter = ["venue"]
    date_hierarchy = "date"
    search_fields = ["description"]
