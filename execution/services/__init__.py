"""The execution engine's services, by concept: ``entries`` (E1) and ``exits`` (E2, E3),
``claims`` (the lock and the position claim), ``placement`` (one attempt at the broker and
the policy around it), ``fills`` (following an order to its final status), ``outcomes``
(an outcome reaching its position), ``follow`` (a handed-off exit finished by its task),
``reconcile`` (by tag), ``settlement`` (what an interrupted execution left), ``orders``
(an order's record), ``locks`` (``lock_state:{id}``), ``safety`` (rate, halt, X5).
Tasks call the entry points through this package."""

from execution.services.entries import strategy_buy_execute
from execution.services.exits import strategy_sell_execute, strategy_stoploss_execute
from execution.services.follow import position_follow

__all__ = ["position_follow", "strategy_buy_execute", "strategy_sell_execute", "strategy_stoploss_execute"]
