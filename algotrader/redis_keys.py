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


def targets(instrument: str) -> str:
    """Sorted set strategy id -> take-profit price: exited on the first tick at or above it."""
    return f"tp:{instrument}"


def trail_highs(instrument: str) -> str:
    """Sorted set strategy id -> the highest price since the fill its trailing stop follows."""
    return f"trail:{instrument}"


def trail_specs(instrument: str) -> str:
    """Hash strategy id -> ``p|<percent>|<moved>`` or ``a|<points>|<moved>``: how far below the
    high its stop trails, and whether the trail has raised it yet (1) or not (0)."""
    return f"trailp:{instrument}"


def price(exchange: str, symbol: str) -> str:
    return f"price:{instrument(exchange, symbol)}"


def lock_state(strategy_id: int) -> str:
    return f"lock_state:{strategy_id}"


# -- market data (the listener, the tick consumer, feed health) ---------------------------


def instrument_price(instrument: str) -> str:
    """``price(exchange, symbol)`` for an instrument already named ``EXCHANGE:SYMBOL``."""
    return f"price:{instrument}"


def tick_keys(instrument: str) -> tuple[str, str]:
    """The keys the tick script is given for an instrument: its price and its stops (it builds
    the target and trail keys from the prefixes ``targets("")`` etc.)."""
    return (instrument_price(instrument), stop_losses(instrument))


SYMBOL_STRATEGIES_PATTERN = "symbol:*:strategies"
STOP_LOSSES_PATTERN = "sl:*"


def subscriptions_channel() -> str:
    """Pub/sub channel: an instrument's strategies or stops changed; the listener re-checks it."""
    return "market:subscriptions"


def tick_counts() -> str:
    """Hash instrument -> ticks applied (M1 is counted here, recorded only sparingly)."""
    return "market:tick_counts"


def stoploss_fired() -> str:
    """Hash strategy id -> trigger taken out of ``sl:`` whose task is not yet enqueued."""
    return "market:sl_fired"


def feed_status() -> str:
    """Hash: the listener's heartbeat and the feed's freshness, for /healthz."""
    return "market:feed"


def feed_stale() -> str:
    """Set of instruments with armed stops and an open missing-price-feed alert (L4)."""
    return "market:feed_stale"


def instrument_of_key(key: str) -> str:
    """The instrument of a ``symbol:{instrument}:strategies`` or ``sl:{instrument}`` key."""
    if key.startswith("symbol:") and key.endswith(":strategies"):
        return key[len("symbol:") : -len(":strategies")]
    if key.startswith("sl:"):
        return key[len("sl:") :]
    raise ValueError(f"not an instrument key: {key!r}")


# -- execution (order rate limits, broker error counts for X5) ----------------------------


def order_rate(account_id: int, second: int) -> str:
    """Counter of orders sent for a broker account in one wall-clock second (all workers)."""
    return f"rate:orders:{account_id}:{second}"


def broker_errors(account_id: int, window: int) -> str:
    """Counter of broker errors on an account's orders in one X5 window."""
    return f"safety:errors:{account_id}:{window}"


def broker_failing(account_id: int) -> str:
    """Set, for a few seconds, by each broker error on an account's orders (a 429 storm)."""
    return f"safety:failing:{account_id}"


def order_updates(account_id: int, broker_order_id: str) -> str:
    """List of the broker's pushed updates of one order (newest last, short-lived), which its
    follow pops instead of asking the broker."""
    return f"order_updates:{account_id}:{broker_order_id}"


def order_updates_live(account_id: int) -> str:
    """Set, with a short life, while the orderupdates process holds the account's stream:
    a follow waits for updates only then, else it polls as it always did."""
    return f"order_updates:live:{account_id}"


# -- brokers (the one-tap Kite login) ----------------------------------------------------


def kite_login_state(nonce: str) -> str:
    """The broker account id a one-tap Kite login link was made for, alive until the link
    expires; deleted as the link is used, so that each link completes one login only."""
    return f"kite_login:{nonce}"


# -- users ---------------------------------------------------------------------------------


def reset_mail_sent(request_id: str) -> str:
    """Set once a password reset request's email is sent (for as long as its task may be
    delivered again), so a redelivered task sends no second email."""
    return f"reset_mail:{request_id}"


# -- monitoring -------------------------------------------------------------------------


def heartbeat(name: str) -> str:
    """The time (epoch seconds) ``name`` last proved alive: "beat", "worker:<queue>"."""
    return f"heartbeat:{name}"


# -- notifications ----------------------------------------------------------------------------


def fcm_access_token(client_email: str) -> str:
    """The OAuth2 access token FCM accepts from this service account, until shortly before
    it expires: every push worker uses it rather than asking Google for its own."""
    return f"fcm:access_token:{client_email}"


# -- recovery (X1, X4) ----------------------------------------------------------------------


def recovery_sentinel() -> str:
    """Set by every recovery before it rebuilds anything: its absence (or another server's
    id in it) means Redis lost its data since (a flush, a restart, a failover), and the
    runtime must be rebuilt."""
    return "recovery:sentinel"


STRATEGY_PATTERN = "strategy:*"
