"""The orders, positions and P&L API: the user's order book, each strategy's position with its
realized and unrealized P&L and charges, and the day's summary. Thin views: a serializer checks
the filters, a selector reads; money leaves here as strings rounded to the paisa, once."""

from datetime import date
from decimal import ROUND_HALF_UP
from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from algotrader.api.pagination import BoundedLimitOffsetPagination, paginated
from algotrader.api.requests import request_user
from execution.charges import Charges
from execution.models import Order
from execution.selectors import orders as order_selectors
from execution.selectors import positions as position_selectors
from execution.selectors.positions import DaySummary
from strategies.models import Strategy

# Days the filters accept: wide enough for any trading history, narrow enough that an
# exchange day's bounds are always a valid instant.
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2100, 12, 31)
MAX_ID = 2**31 - 1


def money(
    help_text: str | None = None, *, allow_null: bool = False, source: str | None = None
) -> serializers.DecimalField:
    """Rupees as a string with two decimals, rounded half up: the only rounding money sees."""
    return serializers.DecimalField(
        max_digits=24,
        decimal_places=2,
        coerce_to_string=True,
        rounding=ROUND_HALF_UP,
        allow_null=allow_null,
        read_only=True,
        help_text=help_text,
        source=source,
    )


class ExchangeDayField(serializers.DateField):
    default_error_messages = {"range": f"Give a day from {FIRST_DAY} to {LAST_DAY}."}

    def to_internal_value(self, value: Any) -> date:
        day: date = super().to_internal_value(value)
        if not FIRST_DAY <= day <= LAST_DAY:
            self.fail("range")
        return day


class OrderFilterInput(serializers.Serializer[Any]):
    strategy = serializers.IntegerField(min_value=1, max_value=MAX_ID, required=False, help_text="A strategy's id.")
    date = ExchangeDayField(required=False, help_text="The exchange day (Asia/Kolkata) the order was placed.")
    status = serializers.ChoiceField(choices=Order.Status.choices, required=False)
    side = serializers.ChoiceField(choices=Order.Side.choices, required=False)


class OrderOutput(serializers.ModelSerializer[Order]):
    exchange = serializers.CharField(source="strategy.exchange")
    symbol = serializers.CharField(source="strategy.symbol")
    average_price = money(
        "The average price it filled at; null until something filled.", allow_null=True, source="fill_price"
    )
    trigger_price = money(allow_null=True)
    limit_price = money(allow_null=True)

    class Meta:
        model = Order
        fields = [
            "id",
            "strategy",
            "exchange",
            "symbol",
            "side",
            "reason",
            "quantity",
            "filled_quantity",
            "average_price",
            "order_type",
            "trigger_price",
            "limit_price",
            "protective",
            "broker_order_id",
            "tag",
            "status",
            "created_at",
            "updated_at",
            "filled_at",
        ]
        read_only_fields = fields


class ChargesOutput(serializers.Serializer[Charges]):
    brokerage = money()
    stt = money("Securities transaction tax, on the sells (rounded to the rupee, as billed).")
    transaction = money("The exchange's transaction charges.")
    sebi = money("SEBI's turnover fee.")
    stamp_duty = money("On the buys.")
    gst = money("18% on brokerage, transaction charges and SEBI's fee.")
    total = money()


class PositionOutput(serializers.Serializer[Any]):  # a Position, or a page of them
    strategy = serializers.IntegerField(source="strategy.pk")
    exchange = serializers.CharField(source="strategy.exchange")
    symbol = serializers.CharField(source="strategy.symbol")
    trade_date = serializers.DateField(source="strategy.trade_date")
    status = serializers.ChoiceField(source="strategy.status", choices=Strategy.Status.choices)
    position = serializers.ChoiceField(source="strategy.position", choices=Strategy.Position.choices)
    bought_quantity = serializers.IntegerField()
    average_buy_price = money("The entry: the average price bought at.", allow_null=True)
    sold_quantity = serializers.IntegerField()
    average_sell_price = money("The exit: the average price sold at.", allow_null=True)
    held_quantity = serializers.IntegerField(help_text="Bought less sold: negative if more was sold.")
    last_price = money("The last traded price, while a quantity is held.", allow_null=True)
    realized_pnl = money()
    unrealized_pnl = money("At the last price; null while held and no price is known yet.", allow_null=True)
    charges = ChargesOutput(help_text="An estimate from the broker's published schedule, for the orders executed.")
    net_pnl = money("Realized plus unrealized P&L less the charges.")


class DayFilterInput(serializers.Serializer[Any]):
    date = ExchangeDayField(required=False, help_text="The trade date (Asia/Kolkata); today if omitted.")


class StrategiesByStatusOutput(serializers.Serializer[dict[str, int]]):
    CREATED = serializers.IntegerField()
    RUNNING = serializers.IntegerField()
    STOPPED = serializers.IntegerField()
    EXITED = serializers.IntegerField()


class DaySummaryOutput(serializers.Serializer[DaySummary]):
    date = serializers.DateField(source="day")
    realized_pnl = money()
    unrealized_pnl = money("At the last prices, over the positions still held.")
    charges = ChargesOutput()
    net_pnl = money("Realized plus unrealized P&L less the charges.")
    open_positions = serializers.IntegerField()
    strategies = StrategiesByStatusOutput(source="strategies_by_status", help_text="The day's strategies by status.")


def query_filters(serializer: type[serializers.Serializer[Any]], request: Request) -> dict[str, Any]:
    """The query's filters, validated from a plain dict: DRF reads a QueryDict as a form and
    drops an empty value (``?date=``) as if absent, where the schema says it is invalid."""
    filters = serializer(data=request.query_params.dict())
    filters.is_valid(raise_exception=True)
    return dict(filters.validated_data)


def _with_filters(filters: type[serializers.Serializer[Any]], spec: dict[str, Any]) -> dict[str, Any]:
    return {**spec, "parameters": [filters, *spec["parameters"]]}


class OrderListApi(APIView):
    @extend_schema(
        **_with_filters(OrderFilterInput, paginated(OrderOutput, name="OrderPage")), operation_id="orders_list"
    )
    def get(self, request: Request) -> Response:
        params = query_filters(OrderFilterInput, request)
        orders = order_selectors.order_list(
            user=request_user(request),
            strategy_id=params.get("strategy"),
            day=params.get("date"),
            status=params.get("status"),
            side=params.get("side"),
        )
        paginator = BoundedLimitOffsetPagination()
        page = paginator.paginate_queryset(orders, request, view=self)
        return paginator.get_paginated_response(OrderOutput(page, many=True).data)


class OrderDetailApi(APIView):
    @extend_schema(responses={200: OrderOutput}, operation_id="orders_detail")
    def get(self, request: Request, order_id: int) -> Response:
        order = order_selectors.order_get(user=request_user(request), order_id=order_id)
        return Response(OrderOutput(order).data)


class PositionListApi(APIView):
    @extend_schema(
        **_with_filters(DayFilterInput, paginated(PositionOutput, name="PositionPage")),
        operation_id="positions_list",
        description="The strategies that traded (at least one fill), newest first; `date` narrows to a trade date.",
    )
    def get(self, request: Request) -> Response:
        day = query_filters(DayFilterInput, request).get("date")
        strategies = position_selectors.position_strategies(user=request_user(request), day=day)
        paginator = BoundedLimitOffsetPagination()
        page = paginator.paginate_queryset(strategies, request, view=self)
        positions = position_selectors.positions_of(page or [])
        return paginator.get_paginated_response(PositionOutput(positions, many=True).data)


class PositionDetailApi(APIView):
    @extend_schema(responses={200: PositionOutput}, operation_id="positions_detail")
    def get(self, request: Request, strategy_id: int) -> Response:
        position = position_selectors.position_get(user=request_user(request), strategy_id=strategy_id)
        return Response(PositionOutput(position).data)


class DaySummaryApi(APIView):
    @extend_schema(parameters=[DayFilterInput], responses={200: DaySummaryOutput}, operation_id="pnl_day_summary")
    def get(self, request: Request) -> Response:
        day = query_filters(DayFilterInput, request).get("date") or order_selectors.exchange_today()
        summary = position_selectors.day_summary(user=request_user(request), day=day)
        return Response(DaySummaryOutput(summary).data)
