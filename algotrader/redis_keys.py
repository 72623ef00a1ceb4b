"""Every Redis key of the runtime state, named as in EVENT-MAP.md and built only here.

An instrument is named as Kite names it, ``EXCHANGE:SYMBOL`` (``NSE:INFY``): a bare
symbol would confuse the same company on two exchanges."""


def instrument(exchange: str, symbol: str) -> str:
    return f"{exchange}:{symbol}"


def strategy(strategy_id: int) -> str:
    return f"strategy:{strategy_id}"


def symbol_strategies(instrument: str) -> str:
    return f"symbol:{instrument}:strategies"


def stop_losses(instrument: str) -> str:
    return f"sl:{instrument}"


def price(exchange: str, symbol: str) -> str:
    return f"price:{instrument(exchange, symbol)}"


def lock_state(strategy_id: int) -> str:
    return f"lock_state:{strategy_id}"
