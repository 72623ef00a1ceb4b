from tests.brokers.kite_sim_fixtures import kite_sim, sim_account

__all__ = ["kite_sim", "sim_account"]
