"""Celery queue and task names, and the routing between them, in one place. Stop-losses get a
worker of their own so an exit never waits behind a burst of BUYs, and so do the fan-outs, so
publishing a burst never takes the orders worker's time from running it."""

from enum import StrEnum


class CeleryQueue(StrEnum):
    ORDERS = "orders"
    STOPLOSS = "stoploss"
    SCHEDULER = "scheduler"
    # Pushes to phones (FCM): slow third-party HTTP with retries, kept off every order worker.
    NOTIFICATIONS = "notifications"


class TaskName(StrEnum):
    """Every task's registered name (the dotted path it always had: messages and beat
    rows already stored keep naming them)."""

    EXECUTE_BUY = "execution.tasks.execute_buy_task"
    EXECUTE_SELL = "execution.tasks.execute_sell_task"
    EXECUTE_STOPLOSS = "execution.tasks.execute_stoploss_task"
    FOLLOW_ORDER = "execution.tasks.follow_order_task"
    # (strategy_id, trigger_price as a str): the protective stop's trigger follows a trailing stop.
    MOVE_PROTECTIVE_STOP = "execution.tasks.move_protective_stop_task"
    SETTLE_ORDERS = "execution.tasks.settle_orders_task"
    # (account_id, payload): a broker's order update (a Kite postback), verified, to apply.
    ORDER_UPDATE = "execution.tasks.order_update_task"
    CHECK_LOSS_LIMITS = "execution.tasks.check_loss_limits_task"
    CHECK_LOSS_LIMITS_HOLDING = "execution.tasks.check_loss_limits_holding_task"
    # (strategy_id, high_price str, stop_price str, move_protective): a trailing stop's raise recorded
    # (P4), off the tick path, then the protective order's move sent.
    RECORD_TRAIL = "strategies.tasks.record_trail_task"
    FIRE_SLOT = "strategies.tasks.fire_slot_task"
    SWEEP_DUE = "strategies.tasks.sweep_due_task"
    # The morning readiness check's pass (beat): runs whose BUY is READINESS_MINUTES away, checked once.
    READINESS_CHECK = "strategies.tasks.readiness_check_task"
    EXPIRE_BROKER_SESSIONS = "brokers.tasks.expire_broker_sessions_task"
    REFRESH_INSTRUMENTS = "brokers.tasks.refresh_instruments_task"
    ACCOUNT_EXISTS_NOTIFY = "algotrader.users.tasks.account_exists_notify_task"
    # (email,): a password reset link, to the account of that email if there is one.
    RESET_LINK_SEND = "algotrader.users.tasks.reset_link_send_task"
    ALERT_NOTIFY = "monitoring.tasks.alert_notify_task"
    ALERTS_NOTIFY_PENDING = "monitoring.tasks.alerts_notify_pending_task"
    BEAT_HEARTBEAT = "monitoring.tasks.beat_heartbeat_task"
    # (notification_id): push a user's notification to their phones through FCM.
    NOTIFICATION_PUSH = "notifications.tasks.notification_push_task"
    NOTIFICATIONS_PUSH_PENDING = "notifications.tasks.notifications_push_pending_task"


DEFAULT_QUEUE = CeleryQueue.ORDERS
TASK_QUEUES: dict[TaskName, CeleryQueue] = {
    TaskName.EXECUTE_STOPLOSS: CeleryQueue.STOPLOSS,
    # Short (a Redis push, or the settling of an order nobody follows), at most one an order
    # (only final updates are sent): a stop-loss's fill must not wait behind a burst of BUYs.
    TaskName.ORDER_UPDATE: CeleryQueue.STOPLOSS,
    TaskName.FIRE_SLOT: CeleryQueue.SCHEDULER,
    TaskName.SWEEP_DUE: CeleryQueue.SCHEDULER,
    TaskName.NOTIFICATION_PUSH: CeleryQueue.NOTIFICATIONS,
    TaskName.NOTIFICATIONS_PUSH_PENDING: CeleryQueue.NOTIFICATIONS,
}


def queue_for(name: TaskName) -> CeleryQueue:
    """The queue a task is routed to."""
    return TASK_QUEUES.get(name, DEFAULT_QUEUE)
