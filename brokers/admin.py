"""Operators see broker accounts and the paper order books, never a credential (not even
its ciphertext): only whether each one is set. Changes go through the services."""

from django.contrib import admin, messages
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import HttpRequest

from brokers import services
from brokers.models import BrokerAccount, PaperOrder
from execution.models import EntryHalt
from execution.services import safety


def _set_or_not(value: str) -> str:
    return "set" if value else "not set"


@admin.register(BrokerAccount)
class BrokerAccountAdmin(admin.ModelAdmin[BrokerAccount]):
    list_display = [
        "id",
        "owner",
        "label",
        "kind",
        "status",
        "entries_halted",
        "token_expires_at",
        "last_validated_at",
        "updated_at",
    ]
    list_filter = ["kind", "status"]
    search_fields = ["owner__email", "label", "broker_user_id"]
    list_select_related = ["owner"]
    ordering = ["-id"]
    show_full_result_count = False
    # Listed explicitly: the encrypted fields must never reach a form or a read-only widget.
    fields = readonly_fields = (
        "owner",
        "kind",
        "label",
        "status",
        "broker_user_id",
        "api_key_state",
        "api_secret_state",
        "access_token_state",
        "token_expires_at",
        "last_validated_at",
        "created_at",
        "updated_at",
    )
    actions = ["mark_token_expired", "halt_entries", "resume_entries"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[BrokerAccount]:
        # One EXISTS per listed row inside the page's one query, not a query per row.
        halts = EntryHalt.objects.filter(Q(account__isnull=True) | Q(account=OuterRef("pk")))
        return super().get_queryset(request).annotate(halted=Exists(halts))

    @admin.display(description="New BUYs halted", boolean=True)
    def entries_halted(self, account: BrokerAccount) -> bool:
        return bool(getattr(account, "halted", False))

    @admin.display(description="API key")
    def api_key_state(self, account: BrokerAccount) -> str:
        return _set_or_not(account.api_key)

    @admin.display(description="API secret")
    def api_secret_state(self, account: BrokerAccount) -> str:
        return _set_or_not(account.api_secret)

    @admin.display(description="Access token")
    def access_token_state(self, account: BrokerAccount) -> str:
        return _set_or_not(account.access_token)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # accounts are submitted by their owners, through the broker check

    def has_change_permission(self, request: HttpRequest, obj: BrokerAccount | None = None) -> bool:
        return False  # state changes go through the services (the action below), never a form save

    def has_delete_permission(self, request: HttpRequest, obj: BrokerAccount | None = None) -> bool:
        return False

    @admin.action(description="Mark the broker session expired (blocks new entries, alerts the user)")
    def mark_token_expired(self, request: HttpRequest, queryset: QuerySet[BrokerAccount]) -> None:
        flipped = sum(
            services.broker_account_mark_token_expired(account=account, reason="marked by an operator")
            for account in queryset.select_related("owner")
        )
        self.message_user(request, f"{flipped} active account(s) marked token_expired.", messages.SUCCESS)

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


@admin.register(PaperOrder)
class PaperOrderAdmin(admin.ModelAdmin[PaperOrder]):
    list_display = ["id", "account", "tag", "side", "quantity", "symbol", "order_type", "status", "average_price"]
    list_filter = ["status", "side", "order_type"]
    search_fields = ["tag", "symbol", "account__label", "account__owner__email"]
    list_select_related = ["account"]
    ordering = ["-id"]  # placement order, on the primary key's index
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: PaperOrder | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: PaperOrder | None = None) -> bool:
        return False
