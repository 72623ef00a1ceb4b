"""The execution engine's services: ``orders`` (one order's life at the broker),
``positions`` (E1/E2/E3 and the position moves), ``locks`` (``lock_state:{id}``).
Tasks call the entry points through this package."""

from execution.services.positions import (
    position_follow,
    strategy_buy_execute,
    strategy_sell_execute,
    strategy_stoploss_execute,
)

__all__ = ["position_follow", "strategy_buy_execute", "strategy_sell_execute", "strategy_stoploss_execute"]
