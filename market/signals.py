"""Signals the market app sends for higher layers to act on without being imported here."""

from django.dispatch import Signal

# The listener process is up and its stream starting; receivers may start work of their
# own (recovery) that ends when the ``stop`` event given is set. Sent with ``feed`` (the
# adapter kind) and ``stop``.
listener_started = Signal()
