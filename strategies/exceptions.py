from algotrader.exceptions import Conflict, NotFound


class StrategyNotFound(NotFound):
    code = "strategy_not_found"
    message = "No strategy with this id."


class InvalidTransition(Conflict):
    code = "invalid_state"
    message = "The strategy is not in a state that allows this."


class StrategyNotRunning(InvalidTransition):
    code = "strategy_not_running"
    message = "The strategy is not running."


class StrategyStartFailed(Conflict):
    code = "start_failed"
    status = 503
    message = "The strategy could not be started: its schedule or runtime state could not be set up. Try again."
