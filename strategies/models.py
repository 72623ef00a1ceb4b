"""Strategies and their state machine (the strategies issue builds them here)."""
