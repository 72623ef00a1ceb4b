"""Orders, the kill switch and the risk limits in admin. Orders are read-only: an order changes only
through the execution services. A halt is set and lifted through the same services as
``manage.py entries halt|resume``, so the admin and the command can never disagree; risk
limits are set through the same service as the API's."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import HttpRequest

from brokers.admin import BrokerAccountAdmin
from brokers.models import BrokerAccount
from execution.models import EntryHalt, Order, RiskLimits
from execution.services import risk, safety


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin[Order]):
    list_display = [
        "id",
        "tag",
        "strategy",
        "account",
        "side",
        "reason",
        "order_type",
        "trigger_price",
        "protective",
        "quantity",
        "filled_quantity",
        "status",
        "broker_order_id",
        "fill_price",
        "attempts",
        "created_at",
    ]
    list_filter = ["status", "reason", "side", "protective"]
    # Exact matches, each on an index: a substring search would scan every order.
    search_fields = ["tag"]
    search_help_text = "An order tag (AT1X2Y), a broker order id or an order id, exactly."
    list_select_related = ["strategy", "account"]
    ordering = ["-id"]  # the primary key's index: creation order without a sort
    show_full_result_count = False

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Order], search_term: str
    ) -> tuple[QuerySet[Order], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        match = Q(tag=term.upper()) | Q(broker_order_id=term)  # tags are upper-case base 36
        if term.isdigit():
            match |= Q(pk=int(term))
        return queryset.filter(match), False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Order | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Order | None = None) -> bool:
        return False


class EntryHaltForm(forms.ModelForm[EntryHalt]):
    class Meta:
        model = EntryHalt
        fields = ["account", "reason"]
        help_texts = {"account": "Leave empty to halt new BUYs on every account: the kill switch."}


@admin.register(EntryHalt)
class EntryHaltAdmin(admin.ModelAdmin[EntryHalt]):
    """The kill switch. "Add" halts new BUYs (every account, or one); the action (or
    delete) resumes them. Exits always run, halted or not."""

    form = EntryHaltForm
    list_display = ["id", "scope", "reason", "until", "created_at"]
    list_select_related = ["account", "account__owner"]
    raw_id_fields = ["account"]
    actions = ["resume"]

    @admin.display(description="Halts new BUYs on")
    def scope(self, halt: EntryHalt) -> str:
        return "ALL ACCOUNTS" if halt.account is None else f"{halt.account} of {halt.account.owner}"

    def has_change_permission(self, request: HttpRequest, obj: EntryHalt | None = None) -> bool:
        return False  # a halt is set or lifted, never edited

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # resuming goes through the service: the action below
        return actions

    def save_model(self, request: HttpRequest, obj: EntryHalt, form: Any, change: bool) -> None:
        # The database lets global halts (account null) repeat; one is enough to read.
        existing = EntryHalt.objects.filter(account__isnull=True).first() if obj.account is None else None
        halt = existing or safety.entries_halt(account=obj.account, reason=obj.reason)
        obj.pk, obj.created_at = halt.pk, halt.created_at
        scope = "every account" if obj.account is None else str(obj.account)
        if halt.reason != obj.reason[:200]:  # another operator (or X5) got there first
            self.message_user(request, f"New BUYs were already halted on {scope}: {halt.reason}", messages.WARNING)
        else:
            self.message_user(request, f"New BUYs halted on {scope}; exits still run.", messages.SUCCESS)

    def delete_model(self, request: HttpRequest, obj: EntryHalt) -> None:
        safety.entries_resume(account=obj.account)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[EntryHalt]) -> None:
        for halt in queryset.select_related("account"):
            safety.entries_resume(account=halt.account)

    @admin.action(description="Resume new BUYs (lift the selected halts)", permissions=["delete"])
    def resume(self, request: HttpRequest, queryset: QuerySet[EntryHalt]) -> None:
        halts = list(queryset.select_related("account", "account__owner"))
        self.log_deletions(request, queryset)
        for halt in halts:
            lifted = safety.entries_resume(account=halt.account)
            scope = "every account" if halt.account is None else str(halt.account)
            self.message_user(request, f"New BUYs resumed on {scope} ({lifted} halt(s) lifted).", messages.SUCCESS)


class RiskLimitsForm(forms.ModelForm[RiskLimits]):
    class Meta:
        model = RiskLimits
        fields = ["user", "account", *RiskLimits.LIMITS]
        help_texts = {"account": "Leave empty for the user's own limits, over all their accounts."}

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        user, account = cleaned.get("user"), cleaned.get("account")
        if user is not None and account is not None and account.owner_id != user.pk:
            self.add_error("account", "This account is not the user's.")
        return cleaned


@admin.register(RiskLimits)
class RiskLimitsAdmin(admin.ModelAdmin[RiskLimits]):
    """A user's risk limits, or an account's: each empty limit is no limit. Saved through the
    same service as the API (``risk_limits_set``); the engine checks them before each BUY."""

    form = RiskLimitsForm
    list_display = ["id", "user", "account", *RiskLimits.LIMITS, "updated_at"]
    list_select_related = ["user", "account"]
    raw_id_fields = ["user", "account"]
    search_fields = ["user__email"]

    def get_readonly_fields(self, request: HttpRequest, obj: RiskLimits | None = None) -> list[str]:
        return ["user", "account"] if obj is not None else []

    def has_delete_permission(self, request: HttpRequest, obj: RiskLimits | None = None) -> bool:
        return False  # no limit is an empty one, set like any other

    def save_model(self, request: HttpRequest, obj: RiskLimits, form: Any, change: bool) -> None:
        saved = risk.risk_limits_set(
            user=obj.user, account=obj.account, **{name: getattr(obj, name) for name in RiskLimits.LIMITS}
        )
        obj.pk, obj.updated_at = saved.pk, saved.updated_at


# The broker accounts' admin, with the kill switch per account: the halt is execution's
# (EntryHalt and its services), the account is brokers'. Registered again here, after
# brokers' admin, rather than have brokers import the execution engine.
admin.site.unregister(BrokerAccount)


@admin.register(BrokerAccount)
class BrokerAccountHaltsAdmin(BrokerAccountAdmin):
    list_display = [*BrokerAccountAdmin.list_display[:5], "entries_halted", *BrokerAccountAdmin.list_display[5:]]
    actions = [*BrokerAccountAdmin.actions, "halt_entries", "resume_entries"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[BrokerAccount]:
        # One EXISTS per listed row inside the page's one query, not a query per row.
        halts = safety.halts_in_force().filter(Q(account__isnull=True) | Q(account=OuterRef("pk")))
        return super().get_queryset(request).annotate(halted=Exists(halts))

    @admin.display(description="New BUYs halted", boolean=True)
    def entries_halted(self, account: BrokerAccount) -> bool:
        return bool(getattr(account, "halted", False))

    def has_operate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("execution.add_entryhalt")

    @admin.action(description="Halt new BUYs on the selected accounts (exits still run)", permissions=["operate"])
    def halt_entries(self, request: HttpRequest, queryset: QuerySet[BrokerAccount]) -> None:
        for account in queryset.order_by("pk"):
            safety.entries_halt(account=account, reason=f"halted by operator {request.user}")
            self.message_user(request, f"New BUYs halted on {account}.", messages.SUCCESS)

    @admin.action(description="Resume new BUYs on the selected accounts", permissions=["operate"])
    def resume_entries(self, request: HttpRequest, queryset: QuerySet[BrokerAccount]) -> None:
        for account in queryset.order_by("pk"):
            lifted = safety.entries_resume(account=account)
            note = "" if lifted else " (it was not halted on its own)"
            self.message_user(request, f"New BUYs resumed on {account}{note}.", messages.SUCCESS)
        if EntryHalt.objects.filter(account__isnull=True).exists():
            self.message_user(request, "New BUYs remain halted on every account (kill switch).", messages.WARNING)
