"""Broker adapters: one interface (``base.BrokerAdapter``), one module per broker."""
