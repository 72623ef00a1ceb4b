"""Orders as write-ahead intents (the execution issue builds them here)."""
