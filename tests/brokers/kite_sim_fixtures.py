"""A running Kite simulator for any test package: ``from tests.brokers.kite_sim_fixtures
import kite_sim, sim_account`` in a conftest (or a test module) and take the fixtures.

``kite_sim`` is started once per module; ``sim_account`` is a fresh, logged-in Kite
user per test (its own order book), and armed faults are cleared after each test."""

from collections.abc import Iterator

import pytest

from brokers.kite_sim import KiteSimulator, SimAccount


@pytest.fixture(scope="module")
def kite_sim() -> Iterator[KiteSimulator]:
    sim = KiteSimulator(tick_interval=0.1, stage_delay=0.01)
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def sim_account(kite_sim: KiteSimulator) -> Iterator[SimAccount]:
    yield kite_sim.create_account()
    kite_sim.clear_faults()
