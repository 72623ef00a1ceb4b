"""Reads of the execution app for the API and the app's socket, always through the requesting
user: ``orders`` (the order book) and ``positions`` (positions, P&L and charges)."""
