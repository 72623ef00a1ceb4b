"""The risk limits API: the user's own limits (over all their accounts) and one broker
account's, read and set whole. The engine checks them before each BUY; the stricter of the
two stops it (docs/trading.md)."""

from decimal import Decimal
from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from algotrader.api.requests import request_user
from brokers.selectors import broker_account_get
from execution.api import money
from execution.models import RiskLimits
from execution.selectors.risk import risk_limits_get
from execution.services.risk import risk_limits_set

_POSITIVE = "Must be more than 0, or null for no limit."


def _rupees(max_digits: int, help_text: str) -> serializers.DecimalField:
    return serializers.DecimalField(
        max_digits=max_digits,
        decimal_places=2,
        min_value=Decimal("0.01"),
        allow_null=True,
        required=False,
        default=None,
        help_text=f"{help_text} Null: no limit.",
        error_messages={"min_value": _POSITIVE},
    )


def _count(help_text: str) -> serializers.IntegerField:
    return serializers.IntegerField(
        min_value=1,
        max_value=1_000_000,
        allow_null=True,
        required=False,
        default=None,
        help_text=f"{help_text} Null: no limit.",
        error_messages={"min_value": _POSITIVE},
    )


class RiskLimitsInput(serializers.Serializer[Any]):
    """Every limit at once: one left out is set to null (no limit)."""

    max_loss_per_day = _rupees(
        14, "Rupees: the day's realized plus unrealized loss that halts new entries and exits open positions."
    )
    max_open_positions = _count("Positions held (or being bought or exited) at once.")
    max_order_value = _rupees(14, "Rupees: one BUY's quantity times the last price.")
    max_day_value = _rupees(16, "Rupees: the day's BUYs together, at their fill prices.")
    max_orders_per_day = _count("BUY orders in the exchange's day.")


class RiskLimitsOutput(serializers.Serializer[RiskLimits]):
    broker_account = serializers.IntegerField(
        source="account_id", allow_null=True, help_text="The account these limits are of; null: the user's own."
    )
    max_loss_per_day = money(allow_null=True)
    max_open_positions = serializers.IntegerField(allow_null=True)
    max_order_value = money(allow_null=True)
    max_day_value = money(allow_null=True)
    max_orders_per_day = serializers.IntegerField(allow_null=True)
    updated_at = serializers.DateTimeField(allow_null=True, help_text="Null: never set.")


_ABOUT = (
    "Each limit is optional (null: no limit). The user's limits count over all their accounts, an "
    "account's over that account alone; a BUY that would pass either is refused before it is placed, "
    "and its strategy ends (event G1, an alert)."
)


class RiskLimitsApi(APIView):
    @extend_schema(responses={200: RiskLimitsOutput}, operation_id="risk_limits_read", description=_ABOUT)
    def get(self, request: Request) -> Response:
        return Response(RiskLimitsOutput(risk_limits_get(user=request_user(request))).data)

    @extend_schema(
        request=RiskLimitsInput, responses={200: RiskLimitsOutput}, operation_id="risk_limits_set", description=_ABOUT
    )
    def put(self, request: Request) -> Response:
        data = RiskLimitsInput(data=request.data)
        data.is_valid(raise_exception=True)
        limits = risk_limits_set(user=request_user(request), **data.validated_data)
        return Response(RiskLimitsOutput(limits).data)


class AccountRiskLimitsApi(APIView):
    @extend_schema(responses={200: RiskLimitsOutput}, operation_id="broker_accounts_risk_limits_read")
    def get(self, request: Request, account_id: int) -> Response:
        user = request_user(request)
        account = broker_account_get(user=user, account_id=account_id)
        return Response(RiskLimitsOutput(risk_limits_get(user=user, account=account)).data)

    @extend_schema(
        request=RiskLimitsInput,
        responses={200: RiskLimitsOutput},
        operation_id="broker_accounts_risk_limits_set",
        description="Limits of this account alone, applied besides the user's own: the stricter stops a BUY.",
    )
    def put(self, request: Request, account_id: int) -> Response:
        user = request_user(request)
        account = broker_account_get(user=user, account_id=account_id)
        data = RiskLimitsInput(data=request.data)
        data.is_valid(raise_exception=True)
        limits = risk_limits_set(user=user, account=account, **data.validated_data)
        return Response(RiskLimitsOutput(limits).data)
