"""The strategies API: create, list, detail, update, delete, start, stop, timeline, readiness.
Thin views: a serializer validates shapes, one service or selector does the rest."""

import re
from decimal import Decimal
from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from algotrader.api.pagination import BoundedLimitOffsetPagination, paginated
from algotrader.api.requests import request_user
from monitoring.models import EventLog
from strategies import selectors, services
from strategies.models import RunReadiness, Strategy

TRAIL_PERCENT_HELP = "The stop follows the highest price since the fill, this percentage below it (0-100)."
TRAIL_POINTS_HELP = "The stop follows the highest price since the fill, this many rupees below it."
TARGET_PERCENT_HELP = "Exit at market once the price reaches this percentage above the fill."
TARGET_PRICE_HELP = "Exit at market once the price reaches this; above the last price and the stop-loss."


def _optional_decimal(max_digits: int, decimal_places: int, help_text: str = "") -> serializers.DecimalField:
    return serializers.DecimalField(
        max_digits=max_digits,
        decimal_places=decimal_places,
        min_value=Decimal(0),
        required=False,
        allow_null=True,
        help_text=help_text or None,
    )


class ProtectiveOrderOutput(serializers.Serializer[Any]):
    status = serializers.CharField()
    order_type = serializers.CharField()
    trigger_price = serializers.DecimalField(max_digits=14, decimal_places=4, allow_null=True)
    quantity = serializers.IntegerField()
    broker_order_id = serializers.CharField()


class StrategyOutput(serializers.ModelSerializer[Strategy]):
    # The stop order resting at the broker (or what became of it): null without one.
    protective_order = serializers.SerializerMethodField()
    # Blank until the strategy exits: said in the schema, which a read-only model field does not.
    exit_reason = serializers.ChoiceField(choices=Strategy.ExitReason.choices, allow_blank=True, read_only=True)

    @extend_schema_field(ProtectiveOrderOutput(allow_null=True))
    def get_protective_order(self, strategy: Strategy) -> dict[str, Any] | None:
        row = selectors.strategy_protective_order(strategy=strategy)
        return None if row is None else dict(ProtectiveOrderOutput(row).data)

    class Meta:
        model = Strategy
        fields = [
            "id",
            "broker_account",
            "venue",
            "exchange",
            "symbol",
            "quantity",
            "product",
            "trade_date",
            "buy_at",
            "sell_at",
            "stop_loss_price",
            "stop_loss_percent",
            "stop_loss_trail_percent",
            "stop_loss_trail_points",
            "take_profit_percent",
            "take_profit_price",
            "status",
            "position",
            "exit_reason",
            "entry_price",
            "stop_trigger_price",
            "target_price",
            "trail_high_price",
            "buy_fire_at",
            "sell_fire_at",
            "version",
            "created_at",
            "started_at",
            "ended_at",
            "protective_stop",
            "protective_order",
        ]
        read_only_fields = fields


class ExchangeTimeField(serializers.TimeField):
    """A wall-clock time of the exchange (Asia/Kolkata for NSE and BSE), never with an offset:
    "10:30Z" would otherwise be read as 10:30 in Kolkata, five and a half hours off."""

    default_error_messages = {
        "offset": "Give the exchange's wall-clock time (HH:MM, Asia/Kolkata for NSE and BSE), without an offset.",
    }

    def to_internal_value(self, value: Any) -> Any:
        # Django's parse_time drops an offset silently, so the text itself is looked at.
        if isinstance(value, str) and _OFFSET.search(value.strip()):
            self.fail("offset")
        return super().to_internal_value(value)


_OFFSET = re.compile(r"(?:[zZ]|[+-]\d{2}(?::?\d{2})?)$")
_TIME_HELP = "The exchange's wall-clock time, HH:MM[:SS], without an offset."


class StrategyCreateInput(serializers.Serializer[Any]):
    broker_account = serializers.IntegerField(min_value=1)
    exchange = serializers.ChoiceField(choices=["NSE", "BSE"])
    symbol = serializers.RegexField(r"^[A-Za-z0-9&_.-]{1,40}$", max_length=40)
    quantity = serializers.IntegerField(min_value=1, max_value=1_000_000)
    buy_at = ExchangeTimeField(help_text=_TIME_HELP)
    sell_at = ExchangeTimeField(help_text=_TIME_HELP)
    stop_loss_price = _optional_decimal(14, 4)
    stop_loss_percent = _optional_decimal(5, 2)
    trade_date = serializers.DateField(required=False, allow_null=True, help_text="Omit for the next possible day.")
    stop_loss_trail_percent = _optional_decimal(5, 2, help_text=TRAIL_PERCENT_HELP)
    stop_loss_trail_points = _optional_decimal(14, 4, help_text=TRAIL_POINTS_HELP)
    take_profit_percent = _optional_decimal(6, 2, help_text=TARGET_PERCENT_HELP)
    take_profit_price = _optional_decimal(14, 4, help_text=TARGET_PRICE_HELP)
    protective_stop = serializers.BooleanField(
        default=True,
        help_text="Rest a protective stop order at the broker once the BUY fills (also off per account).",
    )


class StrategyUpdateInput(serializers.Serializer[Any]):
    quantity = serializers.IntegerField(min_value=1, max_value=1_000_000, required=False)
    buy_at = ExchangeTimeField(required=False, help_text=_TIME_HELP)
    sell_at = ExchangeTimeField(required=False, help_text=_TIME_HELP)
    stop_loss_price = _optional_decimal(14, 4)
    stop_loss_percent = _optional_decimal(5, 2)
    trade_date = serializers.DateField(required=False)
    stop_loss_trail_percent = _optional_decimal(5, 2, help_text=TRAIL_PERCENT_HELP)
    stop_loss_trail_points = _optional_decimal(14, 4, help_text=TRAIL_POINTS_HELP)
    take_profit_percent = _optional_decimal(6, 2, help_text=TARGET_PERCENT_HELP)
    take_profit_price = _optional_decimal(14, 4, help_text=TARGET_PRICE_HELP)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs:
            raise serializers.ValidationError("Nothing to change.")
        return attrs


class StrategyStopInput(serializers.Serializer[Any]):
    keep_position = serializers.BooleanField(default=False)


class EventOutput(serializers.ModelSerializer[EventLog]):
    name = serializers.SerializerMethodField()

    class Meta:
        model = EventLog
        fields = ["id", "code", "name", "message", "payload", "created_at"]

    def get_name(self, event: EventLog) -> str:
        return event.event.label


class ReadinessOutput(serializers.ModelSerializer[RunReadiness]):
    # Blank while ready (or still being checked): said in the schema, which a read-only model field does not.
    reason = serializers.ChoiceField(choices=RunReadiness.Reason.choices, allow_blank=True, read_only=True)

    class Meta:
        model = RunReadiness
        fields = ["day", "status", "reason", "message", "checked_at", "checks"]


class StrategyListApi(APIView):
    @extend_schema(**paginated(StrategyOutput, name="StrategyPage"), operation_id="strategies_list")
    def get(self, request: Request) -> Response:
        paginator = BoundedLimitOffsetPagination()
        page = paginator.paginate_queryset(selectors.strategy_list(user=request_user(request)), request, view=self)
        return paginator.get_paginated_response(StrategyOutput(page, many=True).data)

    @extend_schema(request=StrategyCreateInput, responses={201: StrategyOutput}, operation_id="strategies_create")
    def post(self, request: Request) -> Response:
        data = StrategyCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        strategy = services.strategy_create(
            user=request_user(request), broker_account_id=fields.pop("broker_account"), **fields
        )
        return Response(StrategyOutput(strategy).data, status=status.HTTP_201_CREATED)


class StrategyDetailApi(APIView):
    @extend_schema(responses={200: StrategyOutput}, operation_id="strategies_detail")
    def get(self, request: Request, strategy_id: int) -> Response:
        strategy = selectors.strategy_get(user=request_user(request), strategy_id=strategy_id)
        return Response(StrategyOutput(strategy).data)

    @extend_schema(request=StrategyUpdateInput, responses={200: StrategyOutput}, operation_id="strategies_update")
    def patch(self, request: Request, strategy_id: int) -> Response:
        data = StrategyUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        strategy = services.strategy_update(user=request_user(request), strategy_id=strategy_id, **data.validated_data)
        return Response(StrategyOutput(strategy).data)

    @extend_schema(responses={204: None}, operation_id="strategies_delete")
    def delete(self, request: Request, strategy_id: int) -> Response:
        services.strategy_delete(user=request_user(request), strategy_id=strategy_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class StrategyStartApi(APIView):
    @extend_schema(request=None, responses={200: StrategyOutput}, operation_id="strategies_start")
    def post(self, request: Request, strategy_id: int) -> Response:
        strategy = services.strategy_start(user=request_user(request), strategy_id=strategy_id)
        return Response(StrategyOutput(strategy).data)


class StrategyStopApi(APIView):
    @extend_schema(request=StrategyStopInput, responses={200: StrategyOutput}, operation_id="strategies_stop")
    def post(self, request: Request, strategy_id: int) -> Response:
        data = StrategyStopInput(data=request.data)
        data.is_valid(raise_exception=True)
        strategy = services.strategy_stop(user=request_user(request), strategy_id=strategy_id, **data.validated_data)
        return Response(StrategyOutput(strategy).data)


class StrategyEventsApi(APIView):
    @extend_schema(**paginated(EventOutput, name="EventPage"), operation_id="strategies_events")
    def get(self, request: Request, strategy_id: int) -> Response:
        strategy = selectors.strategy_get(user=request_user(request), strategy_id=strategy_id)
        paginator = BoundedLimitOffsetPagination()
        page = paginator.paginate_queryset(selectors.strategy_timeline(strategy=strategy), request, view=self)
        return paginator.get_paginated_response(EventOutput(page, many=True).data)


class StrategyReadinessApi(APIView):
    @extend_schema(**paginated(ReadinessOutput, name="ReadinessPage"), operation_id="strategies_readiness")
    def get(self, request: Request, strategy_id: int) -> Response:
        strategy = selectors.strategy_get(user=request_user(request), strategy_id=strategy_id)
        paginator = BoundedLimitOffsetPagination()
        page = paginator.paginate_queryset(selectors.strategy_readiness(strategy=strategy), request, view=self)
        return paginator.get_paginated_response(ReadinessOutput(page, many=True).data)
