"""The target and trailing-stop indexes rebuilt after Redis lost its data (X1): from the
database, the target as fixed at the fill and the trail from its last recorded high, with
the stop the trail moved (never the entry's), flagged as raised by the trail."""

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from algotrader.redis_client import get_redis
from execution.recovery.runtime import runtime_rebuild
from market.ticks import ingest
from strategies.exit_index import targets_armed, trails_armed
from strategies.models import Strategy
from strategies.stoploss_index import stoploss_armed
from tests.strategies.factories_scheduling import strategy_create

pytestmark = pytest.mark.django_db

INFY = "NSE:INFY"


def held(**fields: Any) -> Strategy:
    now = timezone.now()
    return strategy_create(
        buy_fire_at=now - timedelta(minutes=1),
        sell_fire_at=now + timedelta(minutes=20),
        position=Strategy.Position.BOUGHT,
        entry_price=Decimal("1540.20"),
        **fields,
    )


def test_a_rebuild_arms_the_target_and_the_trail_at_their_recorded_levels():
    trailed = held(
        stop_loss_trail_percent=Decimal("1"), trail_high_price=Decimal("1600"), stop_trigger_price=Decimal("1584")
    )
    targeted = held(
        take_profit_price=Decimal("1560"), target_price=Decimal("1560"), stop_trigger_price=Decimal("1524.8")
    )
    get_redis().flushdb()

    runtime_rebuild()

    assert stoploss_armed(instrument=INFY) == {trailed.pk: Decimal("1584.0"), targeted.pk: Decimal("1524.8")}
    assert targets_armed(instrument=INFY) == {targeted.pk: Decimal("1560.0")}
    assert trails_armed(instrument=INFY) == {trailed.pk: (Decimal("1600.0"), "p|1.00|1")}


def test_a_rebuilt_trail_goes_on_from_its_recorded_high_and_its_cross_is_a_trail_exit():
    trailed = held(
        stop_loss_trail_percent=Decimal("1"), trail_high_price=Decimal("1600"), stop_trigger_price=Decimal("1584")
    )
    get_redis().flushdb()
    runtime_rebuild()

    below_high = ingest(get_redis(), [[INFY, 1590.0, 1.0]])
    crossed = ingest(get_redis(), [[INFY, 1583.5, 2.0]])

    assert below_high.moves == []
    assert [(t.strategy_id, t.reason) for t in crossed.triggers] == [(trailed.pk, "TRAIL")]
