from collections.abc import Iterator

import pytest

from brokers.kite_sim import KiteSimulator
from tests.brokers.kite_sim_fixtures import sim_account


@pytest.fixture(scope="module")
def kite_sim() -> Iterator[KiteSimulator]:
    """The simulator with still prices (volatility 0): a price moves only by ``set_price``,
    so the first tick after it carries exactly that price."""
    sim = KiteSimulator(tick_interval=0.1, stage_delay=0.01, volatility=0.0)
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()


__all__ = ["kite_sim", "sim_account"]
