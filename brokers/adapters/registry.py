"""The one place that turns a stored ``BrokerAccount`` into its broker adapter: a fresh
one its caller owns (``adapter_for``), or the process's shared one for placing and
following orders (``shared_adapter_for``), whose HTTP connections stay warm."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

from django.conf import settings

from brokers.adapters.base import BrokerAdapter, Credentials
from brokers.adapters.paper import PaperAdapter
from brokers.models import BrokerAccount

# Accounts whose adapters a process keeps; the least recently used goes beyond this.
SHARED_ADAPTERS_MAX = 256

_shared: OrderedDict[tuple[int, str], BrokerAdapter] = OrderedDict()
_shared_lock = threading.Lock()


def adapter_for(account: BrokerAccount, *, process_connections: bool = False) -> BrokerAdapter:
    """``process_connections``: a Kite adapter borrows the process's HTTP session, whose
    warm connections every account's orders share; without it, it has its own."""
    if account.kind == BrokerAccount.Kind.PAPER:
        return PaperAdapter(account)
    if account.kind == BrokerAccount.Kind.KITE:
        # Imported here so that processes which never talk to Kite never load requests' stack for it.
        from brokers.adapters.kite import KiteAdapter
        from brokers.adapters.kite_http import process_session

        return KiteAdapter(
            Credentials(api_key=account.api_key, api_secret=account.api_secret, access_token=account.access_token),
            api_root=settings.KITE_API_ROOT,
            ws_root=settings.KITE_WS_ROOT,
            session=process_session(settings.KITE_API_ROOT) if process_connections else None,
        )
    raise ValueError(f"no adapter for broker kind {account.kind!r}")


def dump_adapter_for(kind: str) -> BrokerAdapter:
    """An adapter of broker ``kind`` for what the broker publishes to anyone (its instrument
    dump): built on no account, so it holds no credentials and opens no session."""
    return adapter_for(BrokerAccount(kind=kind))


def _fingerprint(account: BrokerAccount) -> str:
    """What the adapter was built from. Any change (a new daily access token, new keys, a
    status change, another API root) gives a new fingerprint, hence a new adapter; a
    digest, so that no secret is kept as a dictionary key."""
    parts = (
        account.kind,
        account.status,
        account.api_key,
        account.api_secret,
        account.access_token,
        settings.KITE_API_ROOT,
        settings.KITE_WS_ROOT,
    )
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def shared_adapter_for(account: BrokerAccount) -> BrokerAdapter:
    """The process's adapter for ``account``, built once per account and credentials on the
    process's one HTTP session, so an order (a stop-loss above all) finds a warm connection
    whichever account it is for. Shared by a worker's threads, never closed by its users."""
    if account.pk is None or account.kind == BrokerAccount.Kind.PAPER:
        return adapter_for(account)
    key = (account.pk, _fingerprint(account))
    with _shared_lock:
        adapter = _shared.get(key)
        if adapter is not None:
            _shared.move_to_end(key)
            return adapter
        # Credentials changed (or first use): the old adapter is forgotten, not closed, as
        # another thread may still be mid-request on it; its connections close with it.
        for stale in [k for k in _shared if k[0] == account.pk]:
            del _shared[stale]
        adapter = _shared[key] = adapter_for(account, process_connections=True)
        while len(_shared) > SHARED_ADAPTERS_MAX:
            _shared.popitem(last=False)
        return adapter


def shared_adapters_clear() -> None:
    """Forget every shared adapter and close the process's HTTP session (tests, and a
    process that must drop all sessions)."""
    with _shared_lock:
        _shared.clear()
    # Lazy for start-up cost, as in adapter_for: a process that never talked to Kite skips its HTTP stack.
    from brokers.adapters.kite_http import process_session_close

    process_session_close()
