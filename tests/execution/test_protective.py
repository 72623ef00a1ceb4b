"""The protective stop: after a BUY fills, an SL-M SELL rests at the broker; every exit converts
it into the exit (one SELL order, never two live); a refused conversion ends it first (filled by
its trigger: the exit is the stop-loss's; open: cancelled and confirmed, then a new SELL)."""

import time
from decimal import Decimal

import pytest
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from algotrader import redis_keys
from algotrader.queues import TaskName
from algotrader.redis_client import get_redis
from brokers.instruments import find_instrument
from brokers.models import PaperOrder
from execution import tasks
from execution.models import Order
from execution.recovery.settlement import orders_settle_interrupted
from execution.services import strategy_buy_execute, strategy_sell_execute, strategy_stoploss_execute
from execution.services.protective import protective_resize, protective_trigger
from monitoring.models import Alert
from strategies.models import Strategy
from strategies.services import strategy_update
from strategies.stoploss_index import stoploss_armed
from tests.execution.helpers import codes, orders, paper_book
from tests.strategies.scheduling_helpers import declare_queues, queued

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("protective_on")]


def last_tick(price: str) -> None:
    get_redis().hset(redis_keys.price("NSE", "INFY"), mapping={"price": price, "ts": time.time()})


def bought(make_strategy, **fields) -> Strategy:
    last_tick("1541.00")
    strategy: Strategy = make_strategy(**fields)
    strategy_buy_execute(strategy_id=strategy.pk)
    strategy.refresh_from_db()
    return strategy


def test_a_filled_buy_leaves_an_sl_m_sell_resting_at_the_stop_trigger(make_strategy):
    strategy = bought(make_strategy)

    _, stop = orders(strategy)
    assert (stop.side, stop.reason, stop.protective, stop.order_type) == ("SELL", "STOPLOSS", True, "SL-M")
    assert strategy.stop_trigger_price is not None
    expected = protective_trigger(strategy, strategy.stop_trigger_price)
    assert strategy.stop_trigger_price - expected < Decimal("0.1")
    assert (stop.status, stop.quantity, stop.trigger_price) == ("PLACED", 1, expected)
    assert [(o.order_type, o.status, o.trigger_price) for o in paper_book(strategy)][1] == ("SL-M", "OPEN", expected)
    assert codes(strategy)[-4:] == ["L1", "L2", "B3", "P1"]


def test_the_buffer_lowers_the_trigger_down_to_the_tick(make_strategy, settings):
    settings.PROTECTIVE_STOP_BUFFER_BPS = 10
    strategy = make_strategy()
    infy = find_instrument("NSE", "INFY")
    assert infy is not None

    trigger = protective_trigger(strategy, Decimal("1525.59"))

    # 1525.59 * 0.999 = 1524.064..., down to the instrument's tick
    assert trigger == (Decimal("1524.06441") // infy.tick_size) * infy.tick_size
    assert trigger <= Decimal("1524.06441") < trigger + infy.tick_size


def test_sell_time_converts_the_protective_order_into_the_one_exit(make_strategy):
    strategy = bought(make_strategy)

    strategy_sell_execute(strategy_id=strategy.pk, reason="SELL")

    strategy.refresh_from_db()
    [stop] = [o for o in orders(strategy) if o.side == "SELL"]
    assert (stop.protective, stop.order_type, stop.reason, stop.status) == (True, "MARKET", "SELL", "COMPLETE")
    assert [(o.side, o.status) for o in paper_book(strategy)] == [("BUY", "COMPLETE"), ("SELL", "COMPLETE")]
    assert (strategy.status, strategy.position, strategy.exit_reason) == ("EXITED", "SOLD", "SELL")


def test_the_tick_stop_loss_converts_it_and_the_exit_is_by_sl(make_strategy):
    strategy = bought(make_strategy)

    strategy_stoploss_execute(strategy_id=strategy.pk)

    strategy.refresh_from_db()
    assert [(o.reason, o.order_type, o.status) for o in orders(strategy) if o.side == "SELL"] == [
        ("STOPLOSS", "MARKET", "COMPLETE")
    ]
    assert len(paper_book(strategy)) == 2
    assert (strategy.status, strategy.position, strategy.exit_reason) == ("EXITED", "EXITED_BY_SL", "STOPLOSS")


def test_a_stop_converts_it_with_reason_stop(make_strategy):
    strategy = bought(make_strategy)
    Strategy.objects.filter(pk=strategy.pk).update(status="STOPPED", position="EXITING", exit_reason="STOP")

    strategy_sell_execute(strategy_id=strategy.pk, reason="STOP")

    strategy.refresh_from_db()
    assert [(o.reason, o.status) for o in orders(strategy) if o.side == "SELL"] == [("STOP", "COMPLETE")]
    assert (strategy.status, strategy.exit_reason) == ("EXITED", "STOP")


def test_when_the_brokers_trigger_filled_it_the_sell_is_that_exit_by_sl(make_strategy):
    strategy = bought(make_strategy)
    last_tick("1500.00")  # through the trigger: the paper broker fills it when its book is read

    strategy_sell_execute(strategy_id=strategy.pk, reason="SELL")

    strategy.refresh_from_db()
    assert [(o.reason, o.order_type, o.status) for o in orders(strategy) if o.side == "SELL"] == [
        ("STOPLOSS", "SL-M", "COMPLETE")
    ]
    assert [o.side for o in paper_book(strategy)] == ["BUY", "SELL"]
    assert (strategy.status, strategy.position, strategy.exit_reason) == ("EXITED", "EXITED_BY_SL", "STOPLOSS")
    assert "P3" in codes(strategy)


def test_a_refused_conversion_cancels_it_and_confirms_before_a_new_sell(make_strategy):
    strategy = bought(make_strategy)
    PaperOrder.objects.filter(side="SELL").update(modifications=25)  # past the broker's limit: refused

    strategy_sell_execute(strategy_id=strategy.pk, reason="SELL")

    strategy.refresh_from_db()
    assert [(o.protective, o.status) for o in orders(strategy) if o.side == "SELL"] == [
        (True, "CANCELLED"),
        (False, "COMPLETE"),
    ]
    assert [(o.side, o.order_type, o.status) for o in paper_book(strategy)] == [
        ("BUY", "MARKET", "COMPLETE"),
        ("SELL", "SL-M", "CANCELLED"),
        ("SELL", "MARKET", "COMPLETE"),
    ]
    assert (strategy.status, strategy.position, strategy.exit_reason) == ("EXITED", "SOLD", "SELL")


def test_settlement_finds_the_brokers_trigger_filled_it_and_ends_the_strategy_by_sl(make_strategy, settings):
    strategy = bought(make_strategy)
    last_tick("1500.00")
    Order.objects.filter(protective=True).update(updated_at=Order.objects.get(protective=True).created_at)
    time.sleep(settings.PROTECTIVE_POLL_SECONDS)

    orders_settle_interrupted(older_than=0)

    strategy.refresh_from_db()
    assert [(o.reason, o.status) for o in orders(strategy) if o.side == "SELL"] == [("STOPLOSS", "COMPLETE")]
    assert (strategy.status, strategy.position, strategy.exit_reason) == ("EXITED", "EXITED_BY_SL", "STOPLOSS")
    assert stoploss_armed(instrument="NSE:INFY") == {}
    assert "P3" in codes(strategy) and codes(strategy)[-2:] == ["S5", "L1"]


@pytest.mark.parametrize("switch", ["strategy", "account", "setting"])
def test_switched_off_no_protective_order_is_placed(make_strategy, settings, switch):
    strategy = make_strategy()
    if switch == "strategy":
        Strategy.objects.filter(pk=strategy.pk).update(protective_stop=False)
    elif switch == "account":
        type(strategy.broker_account).objects.filter(pk=strategy.broker_account_id).update(protective_stops=False)
    else:
        settings.PROTECTIVE_STOPS = False

    strategy_buy_execute(strategy_id=strategy.pk)
    strategy_sell_execute(strategy_id=strategy.pk, reason="SELL")

    assert [(o.side, o.protective, o.order_type) for o in orders(strategy)] == [
        ("BUY", False, "MARKET"),
        ("SELL", False, "MARKET"),
    ]


def test_moving_the_stop_moves_the_resting_trigger_once_however_often_the_task_runs(make_strategy):
    strategy = bought(make_strategy)
    assert strategy.stop_trigger_price is not None
    new_stop = strategy.stop_trigger_price + 5
    Strategy.objects.filter(pk=strategy.pk).update(stop_trigger_price=new_stop)

    tasks.move_protective_stop_task(strategy.pk, str(new_stop))
    tasks.move_protective_stop_task(strategy.pk, str(new_stop))

    stop = Order.objects.get(protective=True)
    expected = protective_trigger(strategy, new_stop)
    assert (stop.trigger_price, stop.modifications) == (expected, 1)
    assert PaperOrder.objects.get(side="SELL").trigger_price == expected
    assert codes(strategy).count("P2") == 1


def test_a_stale_move_goes_to_the_stop_stored_now(make_strategy):
    strategy = bought(make_strategy)
    assert strategy.stop_trigger_price is not None
    latest = strategy.stop_trigger_price + 8
    Strategy.objects.filter(pk=strategy.pk).update(stop_trigger_price=latest)

    tasks.move_protective_stop_task(strategy.pk, str(strategy.stop_trigger_price + 3))

    assert Order.objects.get(protective=True).trigger_price == protective_trigger(strategy, latest)


def test_a_later_fill_of_the_buy_grows_the_resting_stop_to_what_is_held(make_strategy):
    strategy = bought(make_strategy, quantity=2)
    Order.objects.filter(side="BUY").update(filled_quantity=1)  # as if the BUY had filled 1 of 2 first
    Order.objects.filter(protective=True).update(quantity=1)
    PaperOrder.objects.filter(side="SELL").update(quantity=1)
    Order.objects.filter(side="BUY").update(filled_quantity=2)  # then its later fill

    protective_resize(strategy=strategy, lock=None)

    assert Order.objects.get(protective=True).quantity == 2
    assert PaperOrder.objects.get(side="SELL").quantity == 2


def test_a_moved_stop_is_not_moved_once_an_exit_converted_it(make_strategy):
    strategy = bought(make_strategy)
    strategy_sell_execute(strategy_id=strategy.pk, reason="SELL")

    tasks.move_protective_stop_task(strategy.pk, "1530.00")

    assert "P2" not in codes(strategy)


def test_the_strategy_api_shows_the_resting_protective_order(make_strategy):
    strategy = bought(make_strategy)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(strategy.owner).access_token}")

    shown = client.get(f"/api/v1/strategies/{strategy.pk}/").json()["protective_order"]

    stop = Order.objects.get(protective=True)
    assert shown == {
        "status": "PLACED",
        "order_type": "SL-M",
        "trigger_price": f"{stop.trigger_price:.4f}",
        "quantity": 1,
        "broker_order_id": stop.broker_order_id,
    }


def test_an_update_of_the_stop_moves_the_resting_order_through_its_task(make_strategy):
    declare_queues()
    strategy = bought(make_strategy)

    strategy_update(user=strategy.owner, strategy_id=strategy.pk, stop_loss_percent=Decimal("2.00"))

    strategy.refresh_from_db()
    [move] = [q for q in queued() if q.task == TaskName.MOVE_PROTECTIVE_STOP.value]
    assert move.args == [strategy.pk, str(strategy.stop_trigger_price)]
    tasks.move_protective_stop_task(*move.args)
    assert strategy.stop_trigger_price is not None
    assert Order.objects.get(protective=True).trigger_price == protective_trigger(strategy, strategy.stop_trigger_price)
    assert "P2" in codes(strategy)


def test_a_safety_abort_converts_it_with_reason_abort(make_strategy):
    strategy = bought(make_strategy)
    Strategy.objects.filter(pk=strategy.pk).update(status="STOPPED", position="EXITING", exit_reason="ABORT")

    strategy_sell_execute(strategy_id=strategy.pk, reason="ABORT")

    strategy.refresh_from_db()
    assert [(o.reason, o.protective, o.status) for o in orders(strategy) if o.side == "SELL"] == [
        ("ABORT", True, "COMPLETE")
    ]
    assert (strategy.status, strategy.exit_reason) == ("EXITED", "ABORT")


def test_a_stop_cancelled_at_the_broker_leaves_the_position_held_and_alerts(make_strategy):
    strategy = bought(make_strategy)
    PaperOrder.objects.filter(side="SELL").update(status="CANCELLED")  # the user cancelled it at the broker
    Order.objects.filter(protective=True).update(updated_at=Order.objects.get(protective=True).created_at)
    time.sleep(0.5)

    orders_settle_interrupted(older_than=0)

    strategy.refresh_from_db()
    assert (strategy.status, strategy.position) == ("RUNNING", "BOUGHT")
    assert Order.objects.get(protective=True).status == "CANCELLED"
    assert Alert.objects.filter(kind="protective_not_placed", strategy=strategy).exists()
    assert list(stoploss_armed(instrument="NSE:INFY")) == [strategy.pk]  # the app's own stop still watches
