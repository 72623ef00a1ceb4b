"""``shared_adapter_for``: one adapter per account and credentials in a process, all on
the process's one HTTP session, so that orders reuse a warm connection whichever account
they are for; new credentials, a new status or another API root give a new adapter at
once; paper and unsaved accounts get a fresh one each time."""

import os
from collections.abc import Iterator
from typing import Any

import pytest

from brokers.adapters import kite_http, registry
from brokers.adapters.base import BrokerAdapter, Credentials, OrderRequest, Side
from brokers.adapters.kite import KiteAdapter
from brokers.adapters.registry import shared_adapter_for, shared_adapters_clear
from brokers.exceptions import BrokerAuthError
from brokers.kite_sim import KiteSimulator, SimAccount
from brokers.models import BrokerAccount
from tests.brokers.kite.servers import canned_kite
from tests.brokers.kite_sim_fixtures import kite_sim, sim_account
from tests.factories import BrokerAccountFactory

__all__ = ["kite_sim", "sim_account"]

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_shared_adapters() -> Iterator[None]:
    shared_adapters_clear()
    yield
    shared_adapters_clear()


@pytest.fixture
def account(settings: Any, kite_sim: KiteSimulator, sim_account: SimAccount) -> BrokerAccount:
    settings.KITE_API_ROOT = kite_sim.api_root
    settings.KITE_WS_ROOT = kite_sim.ws_root
    created: BrokerAccount = BrokerAccountFactory.create(
        kite=True,
        api_key=sim_account.api_key,
        api_secret=sim_account.api_secret,
        access_token=sim_account.access_token,
        broker_user_id=sim_account.user_id,
    )
    return created


def sell(tag: str) -> OrderRequest:
    return OrderRequest(exchange="NSE", symbol="INFY", side=Side.SELL, quantity=1, tag=tag)


def connections_opened(adapter: BrokerAdapter, api_root: str) -> int:
    """TCP connections the adapter's HTTP session has opened to ``api_root``'s host."""
    session = adapter._http._session  # type: ignore[attr-defined]
    pools = session.get_adapter(api_root).poolmanager.pools
    keys = pools.keys()  # urllib3's RecentlyUsedContainer refuses plain iteration
    return sum(pools[key].num_connections for key in keys if f"{key.key_host}:{key.key_port}" in api_root)


def test_orders_of_one_account_share_one_adapter_and_one_connection(account, kite_sim, sim_account):
    first = shared_adapter_for(account)
    first.place_order(sell("REG1"))
    again = shared_adapter_for(BrokerAccount.objects.get(pk=account.pk))  # as the next task loads it
    again.place_order(sell("REG2"))

    assert again is first
    assert connections_opened(first, kite_sim.api_root) == 1
    assert [o["tag"] for o in kite_sim.orders(sim_account.api_key)] == ["REG1", "REG2"]


def test_orders_of_different_accounts_share_the_process_connection(account, kite_sim, sim_account):
    other_sim = kite_sim.create_account()
    other = BrokerAccountFactory.create(
        kite=True,
        api_key=other_sim.api_key,
        api_secret=other_sim.api_secret,
        access_token=other_sim.access_token,
        broker_user_id=other_sim.user_id,
    )

    first, second = shared_adapter_for(account), shared_adapter_for(other)
    first.place_order(sell("ACC1"))
    second.place_order(sell("ACC2"))
    first.place_order(sell("ACC3"))

    assert first is not second
    assert first._http._session is second._http._session  # type: ignore[attr-defined]
    assert connections_opened(first, kite_sim.api_root) == 1
    assert [o["tag"] for o in kite_sim.orders(sim_account.api_key)] == ["ACC1", "ACC3"]
    assert [o["tag"] for o in kite_sim.orders(other_sim.api_key)] == ["ACC2"]


def test_the_shared_session_keeps_no_cookie_of_one_account_for_another():
    with canned_kite() as kite:
        kite.headers["Set-Cookie"] = "kf_session=of-the-first-account; Path=/"
        for n in (1, 2):
            adapter = KiteAdapter(
                Credentials(api_key=f"key{n}", api_secret=f"secret{n}", access_token=f"token{n}"),
                api_root=kite.root,
                ws_root="ws://127.0.0.1:9",
                session=kite_http.process_session(kite.root),
            )
            adapter.cancel_order("1")
            adapter.close()  # borrowed: leaves the process's session open

        assert [r.headers.get("Authorization") for r in kite.received] == ["token key1:token1", "token key2:token2"]
        assert [r.headers.get("Cookie") for r in kite.received] == [None, None]
        assert not kite_http.process_session(kite.root).cookies


def test_a_forked_worker_process_opens_its_own_session():
    root = "http://127.0.0.1:9"
    parent = kite_http.process_session(root)
    pid = os.fork()
    if pid == 0:  # the child: a prefork worker process
        os._exit(0 if kite_http.process_session(root) is not parent else 1)
    _, status = os.waitpid(pid, 0)

    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert kite_http.process_session(root) is parent


def test_a_new_access_token_gives_a_new_adapter_that_uses_it(account, kite_sim, sim_account):
    stale = BrokerAccount.objects.get(pk=account.pk)
    stale.access_token = "not-the-session"
    with pytest.raises(BrokerAuthError):
        shared_adapter_for(stale).place_order(sell("OLD1"))

    stale.access_token = sim_account.access_token
    stale.save(update_fields=["access_token"])
    renewed = shared_adapter_for(BrokerAccount.objects.get(pk=account.pk))
    renewed.place_order(sell("NEW1"))

    assert [o["tag"] for o in kite_sim.orders(sim_account.api_key)] == ["NEW1"]


def test_a_status_change_or_another_api_root_gives_a_new_adapter(account, settings):
    before = shared_adapter_for(account)

    BrokerAccount.objects.filter(pk=account.pk).update(status=BrokerAccount.Status.TOKEN_EXPIRED)
    expired = shared_adapter_for(BrokerAccount.objects.get(pk=account.pk))
    settings.KITE_API_ROOT = "http://127.0.0.1:9/elsewhere"
    elsewhere = shared_adapter_for(BrokerAccount.objects.get(pk=account.pk))

    assert expired is not before
    assert elsewhere is not expired


def test_an_account_keeps_one_entry_and_the_least_recently_used_go(account, monkeypatch):
    monkeypatch.setattr(registry, "SHARED_ADAPTERS_MAX", 2)
    others = BrokerAccountFactory.create_batch(2, kite=True)

    shared_adapter_for(account)
    account.access_token = "rotated"
    shared_adapter_for(account)
    assert [key[0] for key in registry._shared] == [account.pk]
    for other in others:
        shared_adapter_for(other)

    assert [key[0] for key in registry._shared] == [other.pk for other in others]


def test_paper_and_unsaved_accounts_get_a_fresh_adapter_each_time(account):
    paper = BrokerAccountFactory.create()
    unsaved = BrokerAccount(kind=BrokerAccount.Kind.KITE, api_key="k", access_token="t")

    assert shared_adapter_for(paper) is not shared_adapter_for(paper)
    assert shared_adapter_for(unsaved) is not shared_adapter_for(unsaved)
    assert not registry._shared
