"""The one place that turns a stored ``BrokerAccount`` into its broker adapter."""

from __future__ import annotations

from django.conf import settings

from brokers.adapters.base import BrokerAdapter, Credentials
from brokers.adapters.paper import PaperAdapter
from brokers.models import BrokerAccount


def adapter_for(account: BrokerAccount) -> BrokerAdapter:
    if account.kind == BrokerAccount.Kind.PAPER:
        return PaperAdapter(account)
    if account.kind == BrokerAccount.Kind.KITE:
        # Imported here so that processes which never talk to Kite never load requests' stack for it.
        from brokers.adapters.kite import KiteAdapter

        return KiteAdapter(
            Credentials(api_key=account.api_key, api_secret=account.api_secret, access_token=account.access_token),
            api_root=settings.KITE_API_ROOT,
            ws_root=settings.KITE_WS_ROOT,
        )
    raise ValueError(f"no adapter for broker kind {account.kind!r}")
