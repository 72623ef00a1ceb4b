"""The Kite adapter passes the stop-order contract against the Kite simulator, whose own
prices trigger the stops, with Kite's limits on."""

from decimal import Decimal

import pytest

from brokers.adapters.base import Credentials
from brokers.adapters.kite import KiteAdapter
from brokers.kite_sim import KiteSimulator, SimAccount
from tests.brokers.contract_stops import StopOrderContract
from tests.brokers.kite_sim_fixtures import kite_sim, sim_account

__all__ = ["kite_sim", "sim_account"]


@pytest.fixture
def adapter(kite_sim: KiteSimulator, sim_account: SimAccount) -> KiteAdapter:
    credentials = Credentials(sim_account.api_key, sim_account.api_secret, sim_account.access_token)
    return KiteAdapter(credentials, api_root=kite_sim.api_root, ws_root=kite_sim.ws_root)


@pytest.fixture
def instrument() -> tuple[str, str]:
    return ("NSE", "INFY")


@pytest.fixture
def set_price(kite_sim: KiteSimulator):
    def move(exchange: str, symbol: str, price: Decimal) -> None:
        kite_sim.set_price(exchange, symbol, price)

    return move


class TestKiteStopOrderContract(StopOrderContract):
    pass
