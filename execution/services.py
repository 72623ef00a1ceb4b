"""Execution services. For now only the E1/E2 records of a fired BUY or SELL: the
order pipeline (intents, broker calls, fills, retries) is the execution issue's."""

import logging

from monitoring.events import Event
from monitoring.services import emit
from strategies.models import Strategy

logger = logging.getLogger(__name__)


def _strategy(strategy_id: int) -> Strategy | None:
    strategy = Strategy.objects.select_related("owner").filter(pk=strategy_id).first()
    if strategy is None:
        logger.warning("fired strategy no longer exists", extra={"strategy_id": strategy_id})
    return strategy


def strategy_buy_execute(*, strategy_id: int) -> None:
    strategy = _strategy(strategy_id)
    if strategy is None:
        return
    logger.info("BUY not sent: the order pipeline is not built yet", extra={"strategy_id": strategy_id})
    emit(Event.E1_EXECUTE_BUY, strategy=strategy, payload={"strategy_id": strategy_id, "pipeline": "not built"})


def strategy_sell_execute(*, strategy_id: int, reason: str) -> None:
    strategy = _strategy(strategy_id)
    if strategy is None:
        return
    logger.info(
        "SELL not sent: the order pipeline is not built yet", extra={"strategy_id": strategy_id, "reason": reason}
    )
    emit(
        Event.E2_EXECUTE_SELL,
        strategy=strategy,
        payload={"strategy_id": strategy_id, "reason": reason, "pipeline": "not built"},
    )
