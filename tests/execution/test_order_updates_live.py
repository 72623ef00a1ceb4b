"""The orderupdates process as the Procfile runs it, on the Kite simulator's ticker: an exit's
fill is learnt from the account's pushed order updates, with no poll of the broker, although
the follow would wait a minute for an update before it polled."""

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from algotrader.processes import procfile_command
from brokers.kite_sim import KiteSimulator
from brokers.models import BrokerAccount
from execution.models import Order
from execution.services import strategy_stoploss_execute
from execution.services.inbox import order_updates_live
from monitoring.models import EventLog
from tests.execution.workers import ROOT, database_url
from tests.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def order_updates_process(kite_sim: KiteSimulator, kite_account: BrokerAccount, tmp_path: Path) -> Iterator[Path]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "PYTHONUNBUFFERED": "1",
        "KITE_API_ROOT": kite_sim.api_root,
        "KITE_WS_ROOT": kite_sim.ws_root,
        "ORDER_UPDATE_ACCOUNTS_SECONDS": "0.5",
    }
    log = tmp_path / "orderupdates.log"
    process = subprocess.Popen(
        procfile_command("orderupdates", env),
        cwd=ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_until(
            lambda: order_updates_live(account_id=kite_account.pk),
            timeout=60,
            message=lambda: log.read_text(errors="replace")[-4000:],
        )
        yield log
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)


def test_an_exit_learns_its_fill_from_the_order_update_stream(
    settings: Any, make_strategy, kite_account, kite_sim, order_updates_process
):
    # given the account's stream followed by the process, and follows that poll only after a
    # minute without updates (far beyond ORDER_FOLLOW_SECONDS: polling is all but off)
    settings.ORDER_UPDATE_WAIT_SECONDS = 60.0
    settings.ORDER_FOLLOW_SECONDS = 20.0
    polls: list[str] = []
    history = kite_sim.book.history

    def counted(account: Any, order_id: str) -> Any:
        polls.append(order_id)
        return history(account, order_id)

    kite_sim.book.history = counted
    strategy = make_strategy(account=kite_account, position="BOUGHT")

    # when the stop-loss exits (and follows its fill in this process)
    started = time.monotonic()
    try:
        order = strategy_stoploss_execute(strategy_id=strategy.pk)
    finally:
        kite_sim.book.history = history

    # then the exit completed from the pushed update, well within the follow, without a poll
    assert order is not None
    order.refresh_from_db()
    strategy.refresh_from_db()
    assert (order.status, order.filled_quantity) == (Order.Status.COMPLETE, 1)
    assert (strategy.status, strategy.position) == ("EXITED", "EXITED_BY_SL")
    assert time.monotonic() - started < 10
    assert polls == []
    requests = EventLog.objects.filter(order_id=order.pk, code="L2").values_list("payload__request", flat=True)
    assert any("order_update" in request for request in requests)
