"""Reads of broker accounts and of the instrument list. Every account lookup goes through the
requesting user, so another user's account id is simply not found."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import redis
from django.db.models import QuerySet
from django.utils import timezone

from algotrader import redis_keys
from algotrader.redis_client import get_redis
from algotrader.users.models import User
from brokers.exceptions import BrokerAccountNotFound
from brokers.models import BrokerAccount, Instrument


def broker_account_list(*, user: User) -> QuerySet[BrokerAccount]:
    return BrokerAccount.objects.filter(owner=user, deleted_at__isnull=True)


def broker_account_get(*, user: User, account_id: int) -> BrokerAccount:
    account = broker_account_list(user=user).filter(pk=account_id).first()
    if account is None:
        raise BrokerAccountNotFound()
    return account


def broker_account_can_enter(account: BrokerAccount) -> bool:
    """New entries (BUYs) need a live session; exits are the engine's call, not this one's."""
    if account.status != BrokerAccount.Status.ACTIVE:
        return False
    return account.token_expires_at is None or account.token_expires_at > timezone.now()


@dataclass(frozen=True)
class InstrumentMatch:
    instrument: Instrument
    last_price: Decimal | None
    last_price_at: datetime | None


# One statement, one round trip: each group's best ``limit`` by its own index (the prefix groups by
# a B-tree range, the resembling ones by a GiST scan in distance order that stops at ``limit``,
# the similarity threshold applied after it: as a filter inside, the planner reads and sorts
# every candidate instead), then the groups in order. The resembling ones are looked for only
# when the prefixes found fewer than ``limit`` (a one-time filter: PostgreSQL skips the scan);
# a prefix match among them is kept once, in its prefix group. A prefix match is the closer the
# less it adds to the query, so those groups rank by length: no trigram is computed for the
# hundreds of rows a one-letter prefix matches. ``distance`` takes a whole word of the name, not
# a stretch of it: a misspelt RELIANCE is nearer RELIANCE INDUSTRIES than RELAXO FOOTWEARS, whose
# stretch RELA shares more of its letters. Built by hand: the ORM took longer to compile these
# parts than PostgreSQL to run them.
_SEARCH_SQL = """
WITH prefixed AS (
    (SELECT id, 0 AS grp, length(symbol)::float AS distance FROM brokers_instrument
     WHERE symbol LIKE %(prefix)s AND {exchange}
     ORDER BY symbol = %(term)s DESC, distance, symbol, exchange LIMIT %(limit)s)
    UNION ALL
    (SELECT id, 1, length(name)::float AS distance FROM brokers_instrument
     WHERE name LIKE %(prefix)s AND symbol NOT LIKE %(prefix)s AND {exchange}
     ORDER BY distance, symbol, exchange LIMIT %(limit)s)
), resembling AS (
    (SELECT id, 2, {distance} FROM (
        SELECT id, symbol, name FROM brokers_instrument WHERE {exchange}
        ORDER BY symbol <-> %(term)s LIMIT %(limit)s
    ) nearest WHERE symbol %% %(term)s AND (SELECT count(*) FROM prefixed) < %(limit)s)
    UNION ALL
    (SELECT id, 2, {distance} FROM (
        SELECT id, symbol, name FROM brokers_instrument WHERE {exchange}
        ORDER BY name <->> %(term)s LIMIT %(limit)s
    ) nearest WHERE name %%> %(term)s AND (SELECT count(*) FROM prefixed) < %(limit)s)
), found AS (
    SELECT DISTINCT ON (id) * FROM (SELECT * FROM prefixed UNION ALL SELECT * FROM resembling) groups
    ORDER BY id, grp
)
SELECT i.* FROM found JOIN brokers_instrument i ON i.id = found.id
ORDER BY found.grp, i.symbol = %(term)s DESC, found.distance, i.symbol, i.exchange
LIMIT %(limit)s
"""
_DISTANCE = "1 - GREATEST(similarity(symbol, %(term)s), strict_word_similarity(%(term)s, name)) AS distance"


def instrument_search(*, query: str, exchange: str | None = None, limit: int = 20) -> list[InstrumentMatch]:
    """Instruments whose symbol starts with ``query`` first (the exact symbol, then the shortest),
    then those whose name does (the shortest first), then those that only resemble it (pg_trgm
    similarity to the symbol, or to a word of the name; the closest first), ties by symbol. The
    dump's symbols and names are upper case, so is the query; pg_trgm ignores case anyway."""
    term = query.strip().upper()
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    sql = _SEARCH_SQL.format(distance=_DISTANCE, exchange="exchange = %(exchange)s" if exchange else "TRUE")
    params = {"term": term, "prefix": f"{escaped}%", "limit": limit, "exchange": (exchange or "").upper()}
    found = list(Instrument.objects.raw(sql, params))
    return [
        InstrumentMatch(instrument=row, last_price=price, last_price_at=at)
        for row, (price, at) in zip(found, _last_prices(found), strict=True)
    ]


def _last_prices(instruments: Sequence[Instrument]) -> list[tuple[Decimal | None, datetime | None]]:
    """Each instrument's last tick as the tick consumer keeps it (one Redis round trip), else the
    dump's price at its refresh; a search still answers, with the dump's prices, without Redis."""
    fallback = [(i.last_price, i.refreshed_at if i.last_price is not None else None) for i in instruments]
    if not instruments:
        return fallback
    pipe = get_redis().pipeline(transaction=False)
    for i in instruments:
        pipe.hmget(redis_keys.price(i.exchange, i.symbol), ["price", "ts"])
    try:
        ticks = pipe.execute()
    except redis.RedisError:
        return fallback
    return [
        (Decimal(str(price)), datetime.fromtimestamp(float(ts), tz=UTC)) if price and ts else known
        for (price, ts), known in zip(ticks, fallback, strict=True)
    ]
