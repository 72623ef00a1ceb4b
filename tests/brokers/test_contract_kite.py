"""The Kite adapter passes the adapter contract against the Kite simulator over real
HTTP and a real WebSocket."""

import pytest

from brokers.adapters.base import Credentials
from brokers.adapters.kite import KiteAdapter
from brokers.kite_sim import KiteSimulator, SimAccount
from tests.brokers.contract import AdapterContract
from tests.brokers.kite_sim_fixtures import kite_sim, sim_account

__all__ = ["kite_sim", "sim_account"]


def kite_adapter(sim: KiteSimulator, credentials: Credentials) -> KiteAdapter:
    return KiteAdapter(credentials, api_root=sim.api_root, ws_root=sim.ws_root)


@pytest.fixture
def adapter(kite_sim: KiteSimulator, sim_account: SimAccount) -> KiteAdapter:
    return kite_adapter(
        kite_sim,
        Credentials(sim_account.api_key, sim_account.api_secret, sim_account.access_token),
    )


@pytest.fixture
def bad_adapter(kite_sim: KiteSimulator, sim_account: SimAccount) -> KiteAdapter:
    return kite_adapter(kite_sim, Credentials(sim_account.api_key, sim_account.api_secret, "not-the-access-token"))


@pytest.fixture
def instrument() -> tuple[str, str]:
    return ("NSE", "INFY")


class TestKiteAdapterContract(AdapterContract):
    pass
