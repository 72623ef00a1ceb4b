"""The execution engine's services, one module per concept (each says what it is for).
Tasks call the entry points re-exported here: E1 ``entries``, E2 and E3 ``exits``, and the
handed-off exit's ``follow``."""

from execution.services.entries import strategy_buy_execute
from execution.services.exits import strategy_sell_execute, strategy_stoploss_execute
from execution.services.follow import position_follow

__all__ = ["position_follow", "strategy_buy_execute", "strategy_sell_execute", "strategy_stoploss_execute"]
