"""Operators' views of the event log and the alerts. The event log is history, read-only here,
and its list never counts the whole table (an estimate, or a count capped at COUNT_CAP), so it
stays fast at any size."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from monitoring.events import Event
from monitoring.models import Alert, EventLog
from monitoring.services import alert_resolve

COUNT_CAP = 10_000


class CappedCountPaginator(Paginator[Any]):
    """Counting 100,000 rows on every page view is most of the page's time. Unfiltered,
    PostgreSQL's own estimate of the table's rows is used; filtered, the rows are counted
    up to COUNT_CAP (pages beyond are reached by narrowing the filter)."""

    @cached_property
    def count(self) -> int:
        object_list: QuerySet[Any] = self.object_list  # type: ignore[assignment]
        if not object_list.query.where:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
                    [object_list.model._meta.db_table],
                )
                row = cursor.fetchone()
            if row is not None and row[0] > COUNT_CAP:
                return int(row[0])
        return int(object_list.order_by()[: COUNT_CAP + 1].count())


class IdFilter(admin.SimpleListFilter):
    """Filter by one related id, given in the URL (a click on the id in the list) rather
    than listed: a sidebar of every strategy or user would not fit, nor load fast."""

    field = ""

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> list[tuple[str, str]]:
        value = self.value()
        return [(value, f"#{value}")] if value else []

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value and value.isdigit():
            return queryset.filter(**{f"{self.field}_id": int(value)})
        return queryset


class StrategyFilter(IdFilter):
    title = "strategy (click an id in the list)"
    parameter_name = "strategy"
    field = "strategy"


class UserFilter(IdFilter):
    title = "user (click an id in the list)"
    parameter_name = "user"
    field = "user"


class OrderFilter(IdFilter):
    title = "order (click an id in the list)"
    parameter_name = "order"
    field = "order"


@admin.register(EventLog)
class EventLogAdmin(admin.ModelAdmin[EventLog]):
    list_display = ("created_at", "code", "name", "user_link", "strategy_link", "order_link", "message")
    list_display_links = ("created_at",)
    list_filter = ("code", StrategyFilter, UserFilter, OrderFilter)
    search_fields = ("message",)
    search_help_text = "Search the messages (narrow by code, strategy or user first on a large log)."
    list_select_related = ("user", "order")
    list_per_page = 100
    show_full_result_count = False
    paginator = CappedCountPaginator
    date_hierarchy = None
    ordering = ("-created_at", "-id")
    readonly_fields = ("created_at", "code", "user", "strategy", "order", "message", "payload")
    fields = readonly_fields

    @admin.display(description="name")
    def name(self, record: EventLog) -> str:
        return Event.by_code(record.code).label

    def _filter_link(self, parameter: str, value: int | None, text: str) -> str:
        if value is None:
            return "-"
        url = reverse("admin:monitoring_eventlog_changelist")
        return format_html('<a href="{}?{}={}">{}</a>', url, parameter, value, text)

    @admin.display(description="user", ordering="user_id")
    def user_link(self, record: EventLog) -> str:
        return self._filter_link("user", record.user_id, record.user.email if record.user else "-")

    @admin.display(description="strategy", ordering="strategy_id")
    def strategy_link(self, record: EventLog) -> str:
        return self._filter_link("strategy", record.strategy_id, f"#{record.strategy_id}")

    @admin.display(description="order", ordering="order_id")
    def order_link(self, record: EventLog) -> str:
        return self._filter_link("order", record.order_id, record.order.tag or "#" if record.order else "-")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: EventLog | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: EventLog | None = None) -> bool:
        return False


class AlertStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> list[tuple[str, str]]:
        return [("open", "open"), ("resolved", "resolved")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "open":
            return queryset.filter(resolved_at__isnull=True)
        if self.value() == "resolved":
            return queryset.filter(resolved_at__isnull=False)
        return queryset


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin[Alert]):
    list_display = ("opened_at", "severity", "kind", "key", "message", "user", "strategy_id", "is_open", "notified_at")
    list_filter = (AlertStateFilter, "severity", "kind")
    search_fields = ("key", "message")
    list_select_related = ("user",)
    list_per_page = 100
    show_full_result_count = False
    paginator = CappedCountPaginator
    actions = ("resolve",)
    readonly_fields = (
        "kind",
        "key",
        "severity",
        "user",
        "strategy",
        "message",
        "payload",
        "opened_at",
        "resolved_at",
        "resolution",
        "notified_at",
        "resolve_notified_at",
        "deliveries",
    )
    fields = readonly_fields

    @admin.display(boolean=True, description="open")
    def is_open(self, alert: Alert) -> bool:
        return alert.resolved_at is None

    @admin.action(description="Resolve the selected alerts (operators are told)", permissions=["resolve"])
    def resolve(self, request: HttpRequest, queryset: QuerySet[Alert]) -> None:
        resolved = 0
        who = getattr(request.user, "email", "") or str(request.user)
        for alert in queryset.filter(resolved_at__isnull=True):
            if alert_resolve(kind=alert.kind, key=alert.key, resolution=f"resolved by {who}"):
                resolved += 1
        self.message_user(request, f"{resolved} alert(s) resolved.", messages.SUCCESS)

    def has_resolve_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("monitoring.change_alert")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Alert | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Alert | None = None) -> bool:
        return False
