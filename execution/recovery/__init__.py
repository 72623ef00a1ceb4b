"""Recovery (X1, X4) and settlement: rebuilding Redis from the database and settling the
order work a crash, a kill or a flush interrupted. It sits above what it recovers (the
runtime of ``strategies``, the stop-loss index, the execution engine's orders):
``runtime`` rebuilds Redis, ``settlement`` is the one path that finishes lost order
work, ``system`` runs a whole recovery, ``watch`` decides when."""
