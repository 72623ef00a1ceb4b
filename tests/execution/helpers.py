"""Small readers shared by the execution tests."""

from brokers.models import PaperOrder
from execution.models import Order
from monitoring.models import EventLog
from strategies.models import Strategy


def codes(strategy: Strategy) -> list[str]:
    return list(EventLog.objects.filter(strategy=strategy).order_by("id").values_list("code", flat=True))


def orders(strategy: Strategy) -> list[Order]:
    return list(Order.objects.filter(strategy=strategy).order_by("id"))


def paper_book(strategy: Strategy) -> list[PaperOrder]:
    return list(PaperOrder.objects.filter(account_id=strategy.broker_account_id).order_by("id"))
