"""The event catalogue: every code of EVENT-MAP.md, with its category, priority and
whether the user sees it on the strategy timeline. Code names events by these members
(``Event.T1_BUY_TRIGGERED``); ``monitoring.services.emit`` records them."""

from enum import Enum, IntEnum, StrEnum


class Category(StrEnum):
    USER = "user"
    LIFECYCLE = "lifecycle"
    SCHEDULER = "scheduler"
    MARKET = "market"
    EXECUTION = "execution"
    BROKER = "broker"
    SYSTEM = "system"
    MONITORING = "monitoring"


class Priority(IntEnum):
    """EVENT-MAP section 6; a lower number is more urgent."""

    HIGHEST = 0
    HIGH = 1
    MEDIUM = 2
    LOW = 3
    LOWEST = 4


class Event(Enum):
    code: str
    label: str
    category: Category
    priority: Priority
    user_visible: bool

    def __new__(cls, code: str, label: str, category: Category, priority: Priority, user_visible: bool) -> "Event":
        member = object.__new__(cls)
        member._value_ = code
        member.code = code
        member.label = label
        member.category = category
        member.priority = priority
        member.user_visible = user_visible
        return member

    # 3.1 User events
    U1_USER_REGISTERED = ("U1", "USER_REGISTERED", Category.USER, Priority.MEDIUM, False)
    U2_USER_LOGGED_IN = ("U2", "USER_LOGGED_IN", Category.USER, Priority.MEDIUM, False)
    U3_BROKER_KEY_SUBMITTED = ("U3", "BROKER_KEY_SUBMITTED", Category.USER, Priority.MEDIUM, True)
    U4_STRATEGY_CREATED = ("U4", "STRATEGY_CREATED", Category.USER, Priority.MEDIUM, True)
    U5_STRATEGY_UPDATED = ("U5", "STRATEGY_UPDATED", Category.USER, Priority.MEDIUM, True)
    U6_STRATEGY_START_REQUESTED = ("U6", "STRATEGY_START_REQUESTED", Category.USER, Priority.MEDIUM, True)
    U7_STRATEGY_STOP_REQUESTED = ("U7", "STRATEGY_STOP_REQUESTED", Category.USER, Priority.MEDIUM, True)
    # 3.2 Strategy lifecycle
    S1_STRATEGY_STARTED = ("S1", "STRATEGY_STARTED", Category.LIFECYCLE, Priority.MEDIUM, True)
    S2_STRATEGY_READY = ("S2", "STRATEGY_READY", Category.LIFECYCLE, Priority.MEDIUM, True)
    S3_STRATEGY_RUNNING = ("S3", "STRATEGY_RUNNING", Category.LIFECYCLE, Priority.MEDIUM, True)
    S4_STRATEGY_STOPPED = ("S4", "STRATEGY_STOPPED", Category.LIFECYCLE, Priority.MEDIUM, True)
    S5_STRATEGY_EXITED = ("S5", "STRATEGY_EXITED", Category.LIFECYCLE, Priority.MEDIUM, True)
    # 3.3 Scheduler
    T1_BUY_TRIGGERED = ("T1", "BUY_TRIGGERED", Category.SCHEDULER, Priority.HIGH, True)
    T2_SELL_TRIGGERED = ("T2", "SELL_TRIGGERED", Category.SCHEDULER, Priority.HIGH, True)
    T3_SCHEDULER_RESYNC_REQUIRED = ("T3", "SCHEDULER_RESYNC_REQUIRED", Category.SCHEDULER, Priority.HIGH, True)
    # 3.4 Market
    M1_PRICE_TICK = ("M1", "PRICE_TICK", Category.MARKET, Priority.HIGH, False)
    M2_STOPLOSS_TRIGGERED = ("M2", "STOPLOSS_TRIGGERED", Category.MARKET, Priority.HIGHEST, True)
    M3_PRICE_STREAM_DISCONNECTED = ("M3", "PRICE_STREAM_DISCONNECTED", Category.MARKET, Priority.HIGH, False)
    M4_PRICE_STREAM_RESTORED = ("M4", "PRICE_STREAM_RESTORED", Category.MARKET, Priority.HIGH, False)
    # 3.5 Execution
    E1_EXECUTE_BUY = ("E1", "EXECUTE_BUY", Category.EXECUTION, Priority.HIGH, True)
    E2_EXECUTE_SELL = ("E2", "EXECUTE_SELL", Category.EXECUTION, Priority.HIGH, True)
    E3_EXECUTE_STOPLOSS = ("E3", "EXECUTE_STOPLOSS", Category.EXECUTION, Priority.HIGHEST, True)
    E4_ORDER_RETRY_REQUIRED = ("E4", "ORDER_RETRY_REQUIRED", Category.EXECUTION, Priority.HIGH, True)
    E5_ORDER_FINALIZED = ("E5", "ORDER_FINALIZED", Category.EXECUTION, Priority.HIGH, True)
    # 3.6 Broker
    B1_BROKER_AUTH_SUCCESS = ("B1", "BROKER_AUTH_SUCCESS", Category.BROKER, Priority.LOWEST, True)
    B2_BROKER_AUTH_FAILED = ("B2", "BROKER_AUTH_FAILED", Category.BROKER, Priority.LOWEST, True)
    B3_ORDER_ACCEPTED = ("B3", "ORDER_ACCEPTED", Category.BROKER, Priority.LOWEST, True)
    B4_ORDER_REJECTED = ("B4", "ORDER_REJECTED", Category.BROKER, Priority.LOWEST, True)
    B5_PRICE_FEED_CONNECTED = ("B5", "PRICE_FEED_CONNECTED", Category.BROKER, Priority.LOWEST, False)
    B6_PRICE_FEED_ERROR = ("B6", "PRICE_FEED_ERROR", Category.BROKER, Priority.LOWEST, False)
    # 3.7 System
    X1_RUNTIME_STATE_LOADED = ("X1", "RUNTIME_STATE_LOADED", Category.SYSTEM, Priority.HIGH, False)
    X2_LOCK_ACQUIRED = ("X2", "LOCK_ACQUIRED", Category.SYSTEM, Priority.HIGH, False)
    X3_LOCK_CONFLICT = ("X3", "LOCK_CONFLICT", Category.SYSTEM, Priority.HIGH, True)
    X4_SYSTEM_RECOVERY = ("X4", "SYSTEM_RECOVERY", Category.SYSTEM, Priority.HIGH, False)
    X5_SAFETY_ABORT = ("X5", "SAFETY_ABORT", Category.SYSTEM, Priority.HIGHEST, True)
    # 3.8 Monitoring & logging
    L1_STRATEGY_EVENT_LOGGED = ("L1", "STRATEGY_EVENT_LOGGED", Category.MONITORING, Priority.LOW, True)
    L2_ORDER_EVENT_LOGGED = ("L2", "ORDER_EVENT_LOGGED", Category.MONITORING, Priority.LOW, True)
    L3_ERROR_LOGGED = ("L3", "ERROR_LOGGED", Category.MONITORING, Priority.LOW, False)
    L4_ALERT_TRIGGERED = ("L4", "ALERT_TRIGGERED", Category.MONITORING, Priority.LOW, True)

    # Extensions beyond EVENT-MAP (docs/events.md): the protective stop, trailing stops, targets,
    # the readiness check.
    P1_PROTECTIVE_STOP_PLACED = ("P1", "PROTECTIVE_STOP_PLACED", Category.EXECUTION, Priority.HIGH, True)
    P2_PROTECTIVE_STOP_MOVED = ("P2", "PROTECTIVE_STOP_MOVED", Category.EXECUTION, Priority.HIGH, True)
    P3_PROTECTIVE_STOP_FILLED = ("P3", "PROTECTIVE_STOP_FILLED", Category.EXECUTION, Priority.HIGHEST, True)
    P4_TRAILING_STOP_MOVED = ("P4", "TRAILING_STOP_MOVED", Category.MARKET, Priority.MEDIUM, True)
    P5_TARGET_REACHED = ("P5", "TARGET_REACHED", Category.MARKET, Priority.HIGHEST, True)
    # The morning readiness check (docs/events.md): a run's outcome, and a run skipped as not ready.
    R1_READINESS_CHECKED = ("R1", "READINESS_CHECKED", Category.SCHEDULER, Priority.MEDIUM, True)
    R2_RUN_SKIPPED = ("R2", "RUN_SKIPPED", Category.SCHEDULER, Priority.HIGH, True)
    # The risk limits (docs/events.md): a BUY refused by a limit, and the day's loss limit reached.
    G1_RISK_LIMIT_REFUSED = ("G1", "RISK_LIMIT_REFUSED", Category.EXECUTION, Priority.HIGH, True)
    G2_LOSS_LIMIT_REACHED = ("G2", "LOSS_LIMIT_REACHED", Category.EXECUTION, Priority.HIGHEST, True)

    @classmethod
    def by_code(cls, code: str) -> "Event":
        return _BY_CODE[code]

    @classmethod
    def choices(cls) -> list[tuple[str, str]]:
        return [(event.code, f"{event.code} {event.label}") for event in cls]


_BY_CODE: dict[str, Event] = {event.code: event for event in Event}
