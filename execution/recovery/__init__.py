"""Recovery (X1, X4) and settlement: Redis rebuilt from the database and the order work a crash, a kill or a
flush interrupted settled. It sits above what it recovers (the strategies' runtime, the stop-loss index, the
execution engine's orders); ``docs/architecture.md`` says what each module does."""
