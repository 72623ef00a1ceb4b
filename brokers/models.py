"""Broker accounts and their encrypted credentials (the brokers issue builds them here)."""
