"""``OrderUpdateStreams`` against the Kite simulator's ticker: every active Kite account's order
updates, verified by its secret, handed on with the account; its stream marked live while up;
an account that can no longer trade is let go."""

from typing import Any

import pytest

from brokers.adapters.base import BrokerOrder, BrokerOrderStatus, OrderRequest, Side
from brokers.adapters.registry import adapter_for
from brokers.kite_sim import KiteSimulator
from brokers.models import BrokerAccount
from brokers.order_updates import OrderUpdateStreams
from tests.brokers.kite_sim_fixtures import kite_sim, sim_account
from tests.factories import BrokerAccountFactory
from tests.waiting import wait_until

__all__ = ["kite_sim", "sim_account"]

pytestmark = pytest.mark.django_db


class Recorder:
    def __init__(self) -> None:
        self.updates: list[tuple[int, BrokerOrder]] = []
        self.live: dict[int, bool] = {}

    def on_update(self, account_id: int, seen: BrokerOrder) -> None:
        self.updates.append((account_id, seen))

    def on_live(self, account_id: int, live: bool) -> None:
        self.live[account_id] = live


@pytest.fixture
def account(settings: Any, kite_sim: KiteSimulator, sim_account) -> BrokerAccount:
    settings.KITE_API_ROOT, settings.KITE_WS_ROOT = kite_sim.api_root, kite_sim.ws_root
    return BrokerAccountFactory.create(
        kite=True,
        api_key=sim_account.api_key,
        api_secret=sim_account.api_secret,
        access_token=sim_account.access_token,
        broker_user_id=sim_account.user_id,
    )


@pytest.fixture
def streams():
    recorder = Recorder()
    held = OrderUpdateStreams(on_update=recorder.on_update, on_live=recorder.on_live)
    yield held, recorder
    held.stop()


def test_an_accounts_order_updates_arrive_verified_with_the_account(account, streams):
    # given the account's stream up
    held, recorder = streams
    held.sync()
    wait_until(lambda: recorder.live.get(account.pk))

    # when one of its orders fills
    broker_order_id = adapter_for(account).place_order(
        OrderRequest(exchange="NSE", symbol="INFY", side=Side.BUY, quantity=2, tag="ATOU1")
    )

    # then its updates arrive, the last one final with the fill, for that account
    def final() -> BrokerOrder | None:
        return next((s for a, s in recorder.updates if a == account.pk and s.status.is_final), None)

    seen = wait_until(final)
    assert (seen.broker_order_id, seen.tag, seen.status) == (broker_order_id, "ATOU1", BrokerOrderStatus.COMPLETE)
    assert seen.filled_quantity == 2 and seen.average_price is not None


def test_updates_signed_with_another_secret_are_dropped(account, streams, caplog):
    # given the account stored with a secret that is not the one Kite signs with
    BrokerAccount.objects.filter(pk=account.pk).update(api_secret="not-the-apps-secret-00000000")
    held, recorder = streams
    held.sync()
    wait_until(lambda: recorder.live.get(account.pk))

    # when one of its orders fills (its updates pushed, signed with the real secret)
    broker_order_id = adapter_for(account).place_order(
        OrderRequest(exchange="NSE", symbol="INFY", side=Side.BUY, quantity=1, tag="ATOU2")
    )
    wait_until(lambda: adapter_for(account).get_order(broker_order_id).status.is_final)

    # then each arrived and was refused, none handed on
    def refused() -> int:
        return sum("checksum mismatch" in record.getMessage() for record in caplog.records)

    wait_until(lambda: refused() >= 2)  # OPEN and COMPLETE at least
    assert recorder.updates == []
    # and the stream is not reported live any more, so follows poll at once as without it
    held.renew_live()
    assert recorder.live[account.pk] is False


def test_an_account_that_cannot_trade_is_let_go(account, streams):
    held, recorder = streams
    held.sync()
    wait_until(lambda: recorder.live.get(account.pk))

    BrokerAccount.objects.filter(pk=account.pk).update(status=BrokerAccount.Status.TOKEN_EXPIRED)
    held.sync()

    assert held.accounts == set()
    assert recorder.live[account.pk] is False
