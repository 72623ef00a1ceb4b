"""Reads of broker accounts and of the instrument list. Every account lookup goes through the
requesting user, so another user's account id is simply not found."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import redis
from django.contrib.postgres.search import TrigramSimilarity, TrigramStrictWordSimilarity
from django.db.models import Case, Q, QuerySet, Value, When
from django.db.models.functions import Greatest
from django.utils import timezone

from algotrader import redis_keys
from algotrader.redis_client import get_redis
from algotrader.users.models import User
from brokers.exceptions import BrokerAccountNotFound
from brokers.models import BrokerAccount, Instrument


def broker_account_list(*, user: User) -> QuerySet[BrokerAccount]:
    return BrokerAccount.objects.filter(owner=user)


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


def instrument_search(*, query: str, exchange: str | None = None, limit: int = 20) -> list[InstrumentMatch]:
    """Instruments whose symbol or name starts with ``query`` first (an exact symbol, then
    symbol prefixes, then name prefixes), then those that only resemble it (pg_trgm similarity
    to the symbol or to a stretch of the name), each group by closeness then symbol. The
    dump's symbols and names are upper case, so is the query; pg_trgm ignores case anyway."""
    term = query.strip().upper()
    rows = Instrument.objects.filter(
        Q(symbol__startswith=term)
        | Q(name__startswith=term)
        | Q(symbol__trigram_similar=term)
        | Q(name__trigram_word_similar=term)
    )
    if exchange:
        rows = rows.filter(exchange=exchange.upper())
    rows = rows.annotate(
        match_group=Case(
            When(symbol=term, then=Value(0)),
            When(symbol__startswith=term, then=Value(1)),
            When(name__startswith=term, then=Value(2)),
            default=Value(3),
        ),
        # A whole word of the name, not a stretch of it: a misspelt RELIANCE is nearer RELIANCE
        # INDUSTRIES than RELAXO FOOTWEARS, whose stretch RELA shares more of its letters.
        closeness=Greatest(TrigramSimilarity("symbol", term), TrigramStrictWordSimilarity(term, "name")),
    ).order_by("match_group", "-closeness", "symbol", "exchange")
    found = list(rows[:limit])
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
