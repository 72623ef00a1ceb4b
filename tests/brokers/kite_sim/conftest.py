"""The simulator per module, a fresh account per test, and the official client
(``kiteconnect.KiteConnect``, unchanged) pointed at the simulator for that account."""

import time
from collections.abc import Callable
from typing import Any

# The official client; if it is missing: pip install --no-deps -r requirements-kite-client.txt
import kiteconnect
import pytest

from brokers.kite_sim import KiteSimulator, SimAccount
from tests.brokers.kite_sim_fixtures import kite_sim, sim_account

__all__ = ["kite", "kite_sim", "sim_account", "wait_for"]


@pytest.fixture
def kite(kite_sim: KiteSimulator, sim_account: SimAccount) -> Any:
    client = kiteconnect.KiteConnect(sim_account.api_key, root=kite_sim.api_root)
    client.set_access_token(sim_account.access_token)
    return client


def wait_for(condition: Callable[[], Any], timeout: float = 3.0) -> Any:
    """Poll until ``condition()`` is truthy, as a client polls an order's status."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(0.02)
