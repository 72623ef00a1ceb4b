"""The user's orders, newest first, filtered as the app asks: another user's order is a 404."""

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from algotrader.users.models import User
from execution.exceptions import OrderNotFound
from execution.models import Order


def exchange_today() -> date:
    """Today on the exchange's calendar (Asia/Kolkata), whatever the server's zone."""
    return timezone.localdate(timezone=ZoneInfo(settings.EXCHANGE_TIME_ZONE))


def exchange_day_bounds(day: date) -> tuple[datetime, datetime]:
    """The instants an exchange day (Asia/Kolkata) starts and ends: an order placed at 00:30
    IST belongs to that day though it is the previous one in UTC."""
    start = datetime.combine(day, time.min, tzinfo=ZoneInfo(settings.EXCHANGE_TIME_ZONE))
    return start, start + timedelta(days=1)


def order_list(
    *,
    user: User,
    strategy_id: int | None = None,
    day: date | None = None,
    status: str | None = None,
    side: str | None = None,
) -> QuerySet[Order]:
    orders = Order.objects.filter(strategy__owner=user).select_related("strategy")
    if strategy_id is not None:
        orders = orders.filter(strategy_id=strategy_id)
    if day is not None:
        start, end = exchange_day_bounds(day)
        orders = orders.filter(created_at__gte=start, created_at__lt=end)
    if status is not None:
        orders = orders.filter(status=status)
    if side is not None:
        orders = orders.filter(side=side)
    return orders.order_by("-created_at", "-id")


def order_get(*, user: User, order_id: int) -> Order:
    order = order_list(user=user).filter(pk=order_id).first()
    if order is None:
        raise OrderNotFound()
    return order
