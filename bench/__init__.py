"""Benchmarks: each one a script that starts the processes it measures."""
