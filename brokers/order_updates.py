"""The broker's pushed order updates: one ticker connection per Kite account that can trade, with no
instrument subscribed, whose order messages are checked against the account's secret and handed on.
Accounts are re-read every ORDER_UPDATE_ACCOUNTS_SECONDS, so one added, removed or logged in again
is followed without a restart. Paper accounts need none (their broker is in-process)."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from brokers.adapters.base import BrokerOrder
from brokers.adapters.kite import KiteAdapter, kite_order
from brokers.adapters.kite_ticker import KiteTickStream
from brokers.adapters.registry import adapter_for
from brokers.models import BrokerAccount
from brokers.services import kite_order_update_verify

logger = logging.getLogger(__name__)

UpdateHandler = Callable[[int, BrokerOrder], None]
"""(account id, the order as the update shows it): called on the connection's thread, so quick."""
LiveHandler = Callable[[int, bool], None]
"""(account id, whether its stream is connected now and its updates can be trusted)."""

# Kite has been reported to send the ticker's order updates with a blank checksum: a stream whose
# updates fail the check is not reported live for this long, so follows poll at once as they did
# without it, rather than wait for updates that are dropped.
DISTRUST_SECONDS = 60.0


@dataclass
class _Held:
    account: BrokerAccount
    fingerprint: str
    stream: KiteTickStream
    distrusted_until: float = 0.0


class OrderUpdateStreams:
    """The streams of every active Kite account; ``sync`` follows the accounts' changes."""

    def __init__(self, *, on_update: UpdateHandler, on_live: LiveHandler) -> None:
        self._on_update = on_update
        self._on_live = on_live
        self._held: dict[int, _Held] = {}

    def sync(self) -> None:
        """Start a stream for each Kite account that can trade and has none (or whose credentials
        changed: a new day's token), and stop those of accounts that went away or cannot trade."""
        wanted = {
            account.pk: account
            for account in BrokerAccount.objects.filter(
                kind=BrokerAccount.Kind.KITE, status=BrokerAccount.Status.ACTIVE
            ).exclude(access_token="")
        }
        for account_id in [a for a in self._held if a not in wanted]:
            self._drop(account_id)
        for account_id, account in wanted.items():
            fingerprint = _fingerprint(account)
            held = self._held.get(account_id)
            if held is not None and held.fingerprint == fingerprint:
                continue
            if held is not None:
                self._drop(account_id)
            self._start(account, fingerprint)

    def renew_live(self) -> None:
        """Say again which streams are connected (their marks expire unless renewed)."""
        for account_id, held in list(self._held.items()):
            if held.stream.connected:
                self._mark(account_id, True)

    def stop(self) -> None:
        for account_id in list(self._held):
            self._drop(account_id)

    @property
    def accounts(self) -> set[int]:
        return set(self._held)

    def _start(self, account: BrokerAccount, fingerprint: str) -> None:
        adapter = adapter_for(account)
        assert isinstance(adapter, KiteAdapter)
        events = _StreamEvents(account.pk, self._mark)
        stream = adapter.order_update_stream(lambda payload: self._received(account, payload), events)
        self._held[account.pk] = _Held(account, fingerprint, stream)
        stream.start()
        logger.info("order updates: following account", extra={"broker_account_id": account.pk})

    def _drop(self, account_id: int) -> None:
        held = self._held.pop(account_id)
        held.stream.stop()
        self._on_live(account_id, False)
        logger.info("order updates: account no longer followed", extra={"broker_account_id": account_id})

    def _mark(self, account_id: int, live: bool) -> None:
        held = self._held.get(account_id)
        if live and (held is None or time.monotonic() < held.distrusted_until):
            return
        self._on_live(account_id, live)

    def _received(self, account: BrokerAccount, payload: Mapping[str, Any]) -> None:
        if not kite_order_update_verify(account=account, payload=payload):
            logger.warning(
                "order update refused: checksum mismatch",
                extra={"broker_account_id": account.pk, "broker_order_id": payload.get("order_id")},
            )
            held = self._held.get(account.pk)
            if held is not None:
                held.distrusted_until = time.monotonic() + DISTRUST_SECONDS
            self._on_live(account.pk, False)
            return
        try:
            seen = kite_order(payload)
        except (ValueError, TypeError, ArithmeticError):
            logger.warning("unreadable order update dropped", extra={"broker_account_id": account.pk})
            return
        self._on_update(account.pk, seen)


class _StreamEvents:
    """A stream's connection events as the account's live mark."""

    def __init__(self, account_id: int, on_live: LiveHandler) -> None:
        self._account_id = account_id
        self._on_live = on_live

    def on_connected(self) -> None:
        self._on_live(self._account_id, True)

    def on_disconnected(self, reason: str) -> None:
        self._on_live(self._account_id, False)

    def on_error(self, reason: str) -> None:
        logger.warning("order updates: stream error: %s", reason, extra={"broker_account_id": self._account_id})


def _fingerprint(account: BrokerAccount) -> str:
    # A digest, so that no credential is kept as a comparison key in memory longer than the account.
    return hashlib.sha256("\0".join((account.api_key, account.api_secret, account.access_token)).encode()).hexdigest()
