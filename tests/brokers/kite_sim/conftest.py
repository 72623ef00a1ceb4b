"""The simulator per module, a fresh account per test, and the official client
(``kiteconnect.KiteConnect``, unchanged) pointed at the simulator for that account."""

from typing import Any

# The official client; if it is missing: pip install --no-deps -r requirements-kite-client.txt
import kiteconnect
import pytest

from brokers.kite_sim import KiteSimulator, SimAccount
from tests.brokers.kite_sim_fixtures import kite_sim, sim_account

__all__ = ["kite", "kite_sim", "sim_account"]


@pytest.fixture
def kite(kite_sim: KiteSimulator, sim_account: SimAccount) -> Any:
    client = kiteconnect.KiteConnect(sim_account.api_key, root=kite_sim.api_root)
    client.set_access_token(sim_account.access_token)
    return client
