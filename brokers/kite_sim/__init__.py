"""A Kite Connect v3 compatible simulator: REST, ticker WebSocket, seeded prices and
fault injection, so the kite adapter and the official client run against it unchanged."""

from brokers.kite_sim.accounts import DEMO_ACCESS_TOKEN, DEMO_API_KEY, DEMO_API_SECRET, DEMO_USER_ID, SimAccount
from brokers.kite_sim.faults import Fault, FaultKind
from brokers.kite_sim.server import KiteSimulator

__all__ = [
    "DEMO_ACCESS_TOKEN",
    "DEMO_API_KEY",
    "DEMO_API_SECRET",
    "DEMO_USER_ID",
    "Fault",
    "FaultKind",
    "KiteSimulator",
    "SimAccount",
]
