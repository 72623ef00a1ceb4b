"""The market app keeps its state in Redis (prices, stop-loss index); no tables."""
