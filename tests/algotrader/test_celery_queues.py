"""Task messages land in exactly the queue they are routed to, on the real Redis
broker: a stop-loss must never also be delivered through the orders queue."""

import pytest

from algotrader.celery import app
from algotrader.queues import CeleryQueue
from algotrader.redis_client import get_redis


@pytest.fixture
def broker_lists():
    redis = get_redis()
    with app.connection_for_write() as connection:
        for queue in app.conf.task_queues:
            queue(connection.default_channel).declare()  # as a worker does at start-up
    return lambda: {queue: redis.llen(queue.value) for queue in CeleryQueue}


def test_a_task_routed_to_stoploss_lands_only_in_stoploss(broker_lists):
    app.send_task("algotrader.tests.noop", queue=CeleryQueue.STOPLOSS.value)

    assert broker_lists() == {
        CeleryQueue.STOPLOSS: 1,
        CeleryQueue.ORDERS: 0,
        CeleryQueue.SCHEDULER: 0,
        CeleryQueue.NOTIFICATIONS: 0,
    }


def test_an_unrouted_task_lands_only_in_orders(broker_lists):
    app.send_task("algotrader.tests.noop")

    assert broker_lists() == {
        CeleryQueue.STOPLOSS: 0,
        CeleryQueue.ORDERS: 1,
        CeleryQueue.SCHEDULER: 0,
        CeleryQueue.NOTIFICATIONS: 0,
    }


@pytest.mark.parametrize("task", ["strategies.tasks.fire_slot_task", "strategies.tasks.sweep_due_task"])
def test_the_fan_outs_land_only_in_the_scheduler_queue(broker_lists, task):
    """Publishing a burst's BUYs is kept off the worker that runs them."""
    app.send_task(task)

    assert broker_lists() == {
        CeleryQueue.STOPLOSS: 0,
        CeleryQueue.ORDERS: 0,
        CeleryQueue.SCHEDULER: 1,
        CeleryQueue.NOTIFICATIONS: 0,
    }


@pytest.mark.parametrize(
    "task", ["notifications.tasks.notification_push_task", "notifications.tasks.notifications_push_pending_task"]
)
def test_pushes_to_phones_land_only_in_the_notifications_queue(broker_lists, task):
    """FCM's slow answers and retries never take an order worker's time."""
    app.send_task(task)

    assert broker_lists() == {
        CeleryQueue.STOPLOSS: 0,
        CeleryQueue.ORDERS: 0,
        CeleryQueue.SCHEDULER: 0,
        CeleryQueue.NOTIFICATIONS: 1,
    }


def test_every_beat_entry_names_a_registered_task(settings):
    app.loader.import_default_modules()

    missing = [entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values() if entry["task"] not in app.tasks]

    assert missing == []
    assert "brokers.tasks.expire_broker_sessions_task" in {e["task"] for e in settings.CELERY_BEAT_SCHEDULE.values()}


def test_an_order_update_lands_only_in_stoploss(broker_lists):
    """A stop-loss's fill learnt from a postback must not wait behind a burst of BUYs."""
    app.send_task("execution.tasks.order_update_task")

    assert broker_lists() == {
        CeleryQueue.STOPLOSS: 1,
        CeleryQueue.ORDERS: 0,
        CeleryQueue.SCHEDULER: 0,
        CeleryQueue.NOTIFICATIONS: 0,
    }
