"""The stop-loss index moved to ``strategies.stoploss_index`` (the runtime of a running
strategy, beside ``strategies.runtime``). Re-exported here only until
``execution/services/positions.py``, being split concurrently, imports it from there."""

from strategies.stoploss_index import stoploss_arm, stoploss_disarm

__all__ = ["stoploss_arm", "stoploss_disarm"]
