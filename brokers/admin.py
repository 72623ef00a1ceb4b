"""Operators see broker accounts, the paper order books and the instrument list, never a
credential (not even its ciphertext): only whether each one is set. Changes go through the
services."""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from brokers import services
from brokers.models import BrokerAccount, Instrument, PaperOrder


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
    actions = ["mark_token_expired"]  # execution.admin adds the per-account kill switch

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


@admin.register(Instrument)
class InstrumentAdmin(admin.ModelAdmin[Instrument]):
    """The instrument list as the last refresh left it; `manage.py refresh_instruments` changes it."""

    list_display = ["exchange", "symbol", "name", "segment", "tick_size", "lot_size", "last_price", "refreshed_at"]
    list_filter = ["exchange", "segment"]
    search_fields = ["symbol", "name", "=instrument_token"]
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Instrument | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Instrument | None = None) -> bool:
        return False
