"""Operators' view of strategies, their runs' readiness and the market calendar. A strategy is never edited
here: Stop and Exit now call the same services as the app's STOP, so every state
change is a compare-and-set with its events; the calendar is plain data, edited here."""

from __future__ import annotations

import logging
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django import forms
from django.contrib import admin, messages
from django.db.models import Q, QuerySet
from django.http import HttpRequest

from algotrader.exceptions import ApplicationError
from strategies import readiness, services
from strategies.models import MarketHoliday, MarketSession, RunReadiness, Strategy

logger = logging.getLogger(__name__)


class MarketSessionForm(forms.ModelForm[MarketSession]):
    """The calendar is read by validation and the scheduler on every plan: a typo here
    would break them all, so it is refused on the form."""

    class Meta:
        model = MarketSession
        fields = ["venue", "opens_at", "closes_at", "time_zone", "trading_weekdays", "always_open"]

    def clean_trading_weekdays(self) -> str:
        days = [day.strip() for day in self.cleaned_data["trading_weekdays"].split(",") if day.strip()]
        if not days or any(day not in {"0", "1", "2", "3", "4", "5", "6"} for day in days):
            raise forms.ValidationError("Weekday numbers 0 (Monday) to 6 (Sunday), comma-separated: 0,1,2,3,4.")
        return ",".join(sorted(set(days)))

    def clean_time_zone(self) -> str:
        zone = str(self.cleaned_data["time_zone"]).strip()
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise forms.ValidationError("An IANA time zone, such as Asia/Kolkata.") from None
        return zone


@admin.register(MarketSession)
class MarketSessionAdmin(admin.ModelAdmin[MarketSession]):
    form = MarketSessionForm
    list_display = ["venue", "opens_at", "closes_at", "time_zone", "trading_weekdays", "always_open"]


@admin.register(MarketHoliday)
class MarketHolidayAdmin(admin.ModelAdmin[MarketHoliday]):
    list_display = ["date", "venue", "description"]
    list_filter = ["venue"]
    date_hierarchy = "date"
    search_fields = ["description"]
    ordering = ["-date", "venue"]

    def save_model(self, request: HttpRequest, obj: MarketHoliday, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        # Plans are checked against the calendar when made and started, not again at fire time.
        planned = Strategy.objects.filter(
            venue=obj.venue, trade_date=obj.date, status__in=(Strategy.Status.CREATED, Strategy.Status.RUNNING)
        ).count()
        if planned:
            self.message_user(
                request,
                f"{planned} strategies are planned on {obj.venue} for {obj.date:%Y-%m-%d} and were checked "
                "before this holiday existed: stop the running ones if they must not trade that day.",
                messages.WARNING,
            )


def _label(strategy: Strategy) -> str:
    return f"#{strategy.pk} {strategy.exchange}:{strategy.symbol} ({strategy.owner})"


@admin.register(Strategy)
class StrategyAdmin(admin.ModelAdmin[Strategy]):
    """View-only: Stop and Exit now go through ``strategies.services`` (the STOP the
    app's user has), one strategy at a time, each answered with its own message."""

    list_display = [
        "id",
        "owner",
        "broker_account",
        "exchange",
        "symbol",
        "quantity",
        "trade_date",
        "buy_at",
        "sell_at",
        "status",
        "position",
        "exit_reason",
        "created_at",
    ]
    list_filter = ["status", "position", "exit_reason", "venue", "trade_date"]
    # Exact matches only (id, symbol, owner's email), each served by an index: a substring
    # search scans every row, and there are hundreds of thousands.
    search_fields = ["symbol"]
    search_help_text = "A strategy id, a symbol (INFY) or the owner's email, exactly."
    list_select_related = ["owner", "broker_account"]
    ordering = ["-id"]  # the primary key's index: creation order without a sort
    show_full_result_count = False
    actions = ["stop", "exit_now"]

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Strategy], search_term: str
    ) -> tuple[QuerySet[Strategy], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        match = Q(symbol=term.upper())
        if term.isdigit():
            match |= Q(pk=int(term))
        if "@" in term:
            match = Q(owner__email=term.lower())  # stored lower-cased
        return queryset.filter(match), False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # strategies are created by their owners, through validation

    def has_change_permission(self, request: HttpRequest, obj: Strategy | None = None) -> bool:
        return False  # no form ever saves a strategy: the actions below call the services

    def has_delete_permission(self, request: HttpRequest, obj: Strategy | None = None) -> bool:
        return False

    def has_operate_permission(self, request: HttpRequest) -> bool:
        """The actions need the model's change permission, though no form changes it."""
        return request.user.has_perm("strategies.change_strategy")

    def _act(self, request: HttpRequest, strategy: Strategy, outcome: str, **stop: Any) -> None:
        try:
            stopped = services.strategy_stop(user=strategy.owner, strategy_id=strategy.pk, **stop)
        except ApplicationError as refusal:
            self.message_user(request, f"{_label(strategy)}: refused: {refusal.message}", messages.ERROR)
            return
        except Exception as error:
            # After its commit (Redis or the task queue down): the rest of the selection still
            # gets its turn, and the operator is told to look rather than shown a 500.
            logger.exception("admin strategy action failed", extra={"strategy_id": strategy.pk})
            self.message_user(
                request,
                f"{_label(strategy)}: failed ({type(error).__name__}); reload to see its state, and see the logs.",
                messages.ERROR,
            )
            return
        if stopped.position == Strategy.Position.EXITING and stopped.exit_reason == Strategy.ExitReason.STOP:
            outcome += "; its position is being sold at market"
        self.log_change(request, stopped, outcome)
        self.message_user(request, f"{_label(stopped)}: {outcome}.", messages.SUCCESS)

    @admin.action(
        description="Stop the selected strategies (a held position is sold at market)", permissions=["operate"]
    )
    def stop(self, request: HttpRequest, queryset: QuerySet[Strategy]) -> None:
        for strategy in queryset.select_related("owner").order_by("pk"):
            self._act(request, strategy, "stopped by an operator")

    @admin.action(description="Exit now: sell the selected strategies' positions at market", permissions=["operate"])
    def exit_now(self, request: HttpRequest, queryset: QuerySet[Strategy]) -> None:
        for strategy in queryset.select_related("owner").order_by("pk"):
            refusal = _exit_refusal(strategy)
            if refusal:
                self.message_user(request, f"{_label(strategy)}: not exited: {refusal}.", messages.WARNING)
                continue
            self._act(request, strategy, "exit ordered by an operator", keep_position=False)


@admin.register(RunReadiness)
class RunReadinessAdmin(admin.ModelAdmin[RunReadiness]):
    """The morning readiness check's outcomes: which runs are not ready, why, and what their
    owner was told to do. View-only; Check again runs the check now (after a user's login)."""

    list_display = ["day", "strategy", "broker_account", "status", "reason", "message", "checked_at", "checks"]
    list_filter = ["status", "reason", "day"]
    search_fields = ["strategy__id"]
    search_help_text = "A strategy id, exactly."
    list_select_related = ["strategy", "broker_account"]
    ordering = ["-day", "-id"]
    show_full_result_count = False
    actions = ["check_again"]

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[RunReadiness], search_term: str
    ) -> tuple[QuerySet[RunReadiness], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        # Exact and indexed, as the strategies' search: a text scan of every day's runs is not.
        return (queryset.filter(strategy_id=int(term)) if term.isdigit() else queryset.none()), False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: RunReadiness | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: RunReadiness | None = None) -> bool:
        return False

    def has_operate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("strategies.change_strategy")

    @admin.action(description="Check the selected runs again now", permissions=["operate"])
    def check_again(self, request: HttpRequest, queryset: QuerySet[RunReadiness]) -> None:
        by_account: dict[int, list[int]] = {}
        for account_id, strategy_id in queryset.values_list("broker_account_id", "strategy_id"):
            by_account.setdefault(account_id, []).append(strategy_id)
        ready = not_ready = 0
        for strategy_ids in by_account.values():
            findings = readiness.readiness_check_runs(strategy_ids=strategy_ids)
            ready += sum(finding.ready for finding in findings.values())
            not_ready += sum(not finding.ready for finding in findings.values())
        self.message_user(request, f"Checked again: {ready} ready, {not_ready} not ready.", messages.SUCCESS)


def _exit_refusal(strategy: Strategy) -> str:
    """Why Exit now has nothing to do (empty: it may go ahead). The service re-checks under
    its row lock; this only turns the common cases into a clear word for the operator."""
    Position, Status = Strategy.Position, Strategy.Status
    if strategy.position == Position.EXITING:
        return "its exit is already under way"
    if strategy.position == Position.BUYING:
        return "its BUY is still at the broker; exit once it has filled (or Stop it)"
    if strategy.position != Position.BOUGHT:
        return "it holds no position (use Stop to end its timers)"
    if strategy.status != Status.RUNNING:
        return "its owner stopped it and kept the position: close that position at the broker"
    return ""
