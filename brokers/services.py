"""Broker account services: keys checked with the broker (U3, B1/B2), the Kite login, a session
marked expired (B2 + L4), deletion, erasure (its owner's account deleted), secrets re-encrypted;
and the instrument list refreshed from the broker's dump. Broker calls run outside any
transaction, so no row lock is held across the network and a refusal's B2 commits though the
request fails."""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from django.apps import apps
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import ProtectedError
from django.utils import timezone

from algotrader.advisory_locks import transaction_lock
from algotrader.celery import task_send
from algotrader.queues import TaskName
from algotrader.users.models import User
from brokers.adapters.base import AccountProfile, Instrument, SessionLogin
from brokers.adapters.registry import adapter_for, dump_adapter_for
from brokers.exceptions import (
    BrokerAccountDisabled,
    BrokerAccountInUse,
    BrokerAccountLabelTaken,
    BrokerAccountNotFound,
    BrokerAuthError,
    BrokerLoginNotSupported,
    OrderUpdateForbidden,
)
from brokers.fields import EncryptedTextField
from brokers.instruments import instruments_store
from brokers.models import BrokerAccount
from brokers.models import Instrument as InstrumentRow
from monitoring.events import Event
from monitoring.services import alert_raise, alert_resolve, emit

logger = logging.getLogger(__name__)

KITE_TIME_ZONE = ZoneInfo("Asia/Kolkata")
KITE_SESSION_ENDS = time(6, 0)
_ROTATION_BATCH = 500
_INSTRUMENTS_LOCK_SPACE = 0x1257A0  # the PostgreSQL advisory lock a refresh of the instrument list holds


def kite_session_expiry(logged_in_at: datetime) -> datetime:
    """Kite access tokens die at the next 06:00 Asia/Kolkata, whatever time they were issued."""
    local = logged_in_at.astimezone(KITE_TIME_ZONE)
    expiry = datetime.combine(local.date(), KITE_SESSION_ENDS, tzinfo=KITE_TIME_ZONE)
    if expiry <= local:
        expiry += timedelta(days=1)
    return expiry.astimezone(UTC)


def _about(account: BrokerAccount) -> dict[str, Any]:
    # What events may say about an account: never a credential.
    return {"broker_account_id": account.pk, "kind": account.kind, "label": account.label}


def _validate_with_broker(account: BrokerAccount, *, refused: str) -> AccountProfile:
    """Ask the broker; a refusal is recorded for the user (B2) and raised with the broker's reason."""
    try:
        return adapter_for(account).validate_credentials()
    except BrokerAuthError as error:
        emit(
            Event.B2_BROKER_AUTH_FAILED,
            user=account.owner,
            message=f"{refused} of '{account.label}': {error.message}",
            payload={**_about(account), "reason": error.message},
        )
        raise BrokerAuthError(f"{refused}: {error.message}", broker_error_type=error.broker_error_type) from error


def _activate(account: BrokerAccount, profile: AccountProfile, now: datetime) -> None:
    account.status = BrokerAccount.Status.ACTIVE
    account.broker_user_id = profile.broker_user_id[:64]
    account.last_validated_at = now
    account.token_expires_at = kite_session_expiry(now) if account.kind == BrokerAccount.Kind.KITE else None


def broker_account_submit(
    *,
    owner: User,
    kind: str,
    label: str,
    api_key: str = "",
    api_secret: str = "",
    access_token: str = "",
    protective_stops: bool = True,
) -> BrokerAccount:
    """Store an account whose credentials the broker has just accepted (active, B1), or a
    Kite account that still needs its daily login (login_required). A refusal (B2) stores
    nothing and raises BrokerAuthError with the broker's reason."""
    label = label.strip()
    if BrokerAccount.objects.filter(owner=owner, label=label).exists():
        raise BrokerAccountLabelTaken(fields={"label": [BrokerAccountLabelTaken.message]})
    account = BrokerAccount(
        owner=owner,
        kind=kind,
        label=label,
        api_key=api_key.strip(),
        api_secret=api_secret.strip(),
        access_token=access_token.strip(),
        protective_stops=protective_stops,
    )
    emit(
        Event.U3_BROKER_KEY_SUBMITTED,
        user=owner,
        message=f"Broker account '{label}' ({kind}) submitted",
        payload=_about(account),
    )
    if kind == BrokerAccount.Kind.KITE and not account.access_token:
        # Kite checks keys only through a session: the user logs in next (login-url, session).
        account.status = BrokerAccount.Status.LOGIN_REQUIRED
        _insert(account)
        return account

    now = timezone.now()
    profile = _validate_with_broker(account, refused="The broker refused the credentials")
    _activate(account, profile, now)
    with transaction.atomic():
        _insert(account)
        emit(
            Event.B1_BROKER_AUTH_SUCCESS,
            user=owner,
            message=f"Broker account '{label}' connected",
            payload=_about(account),
        )
    return account


def _insert(account: BrokerAccount) -> None:
    try:
        with transaction.atomic():
            account.save(force_insert=True)
    except IntegrityError as error:  # the same label submitted twice at once
        raise BrokerAccountLabelTaken(fields={"label": [BrokerAccountLabelTaken.message]}) from error


# Whether an app above still needs an account (a strategy that may trade on it): registered in
# their ready(), since brokers imports none of them.
_IN_USE_CHECKS: list[Callable[[BrokerAccount], bool]] = []


def broker_account_in_use_register(check: Callable[[BrokerAccount], bool]) -> None:
    if check not in _IN_USE_CHECKS:
        _IN_USE_CHECKS.append(check)


def broker_account_delete(*, account: BrokerAccount) -> None:
    """The owner's delete: refused while a strategy may still trade on the account (its exit
    needs the credentials); gone outright when nothing refers to it, else erased (the row stays
    for the strategies and orders on record) and hidden from the owner."""
    about = _about(account)
    with transaction.atomic():
        locked = BrokerAccount.objects.select_for_update().get(pk=account.pk)
        if any(check(locked) for check in _IN_USE_CHECKS):
            raise BrokerAccountInUse()
        try:
            with transaction.atomic():
                locked.delete()
        except ProtectedError:
            broker_account_erase(account=locked)
            logger.info("broker account erased on its owner's delete", extra={"user_id": account.owner_id, **about})
            return
    logger.info("broker account deleted", extra={"user_id": account.owner_id, **about})


def broker_account_erase(*, account: BrokerAccount) -> None:
    """Deleting its owner's account: the row stays (orders placed through it are kept) but its
    credentials and the broker's id of the person are erased, its label no longer says whose it
    was, and it is disabled, so nothing trades or logs in through it again. The caller holds
    the row's lock, inside its transaction."""
    BrokerAccount.objects.filter(pk=account.pk).update(
        api_key="",
        api_secret="",
        access_token="",
        broker_user_id="",
        token_expires_at=None,
        label=f"deleted account {account.pk}",
        status=BrokerAccount.Status.DISABLED,
        deleted_at=timezone.now(),
        updated_at=timezone.now(),
    )
    logger.info("broker account erased", extra={"user_id": account.owner_id, "broker_account_id": account.pk})


def broker_account_login_url(*, account: BrokerAccount, redirect_params: Mapping[str, str] | None = None) -> str:
    """Kite's login page for this app; Kite redirects back with a ``request_token`` and
    ``redirect_params`` (a query string of their own) echoed as query parameters."""
    if account.kind != BrokerAccount.Kind.KITE:
        raise BrokerLoginNotSupported()
    query: dict[str, str | int] = {"v": 3, "api_key": account.api_key}
    if redirect_params:
        query["redirect_params"] = urlencode(redirect_params)
    return f"{settings.KITE_LOGIN_URL}?{urlencode(query)}"


def broker_account_create_session(*, account: BrokerAccount, request_token: str) -> BrokerAccount:
    """Exchange a Kite login's ``request_token`` for the day's access token (the checksum is
    the adapter's business), confirm it with the broker, and make the account active (B1)."""
    if account.kind != BrokerAccount.Kind.KITE:
        raise BrokerLoginNotSupported()
    if account.status == BrokerAccount.Status.DISABLED:
        raise BrokerAccountDisabled()
    adapter = adapter_for(account)
    if not isinstance(adapter, SessionLogin):
        raise BrokerLoginNotSupported()
    try:
        access_token = adapter.exchange_request_token(request_token.strip(), account.api_secret)
    except BrokerAuthError as refused:
        # The account stays as it was: a stale request_token says nothing about the keys.
        emit(
            Event.B2_BROKER_AUTH_FAILED,
            user=account.owner,
            message=f"Kite refused the login of '{account.label}': {refused.message}",
            payload={**_about(account), "reason": refused.message},
        )
        raise BrokerAuthError(
            f"Kite refused the login: {refused.message}", broker_error_type=refused.broker_error_type
        ) from refused
    now = timezone.now()
    # An unsaved stand-in carries the new token to the broker; the row changes only below.
    with_session = BrokerAccount(
        pk=account.pk,
        owner=account.owner,
        kind=account.kind,
        label=account.label,
        api_key=account.api_key,
        api_secret=account.api_secret,
        access_token=access_token,
    )
    profile = _validate_with_broker(with_session, refused="Kite refused the new session")

    with transaction.atomic():
        locked = BrokerAccount.objects.select_for_update().filter(pk=account.pk).first()
        if locked is None:
            raise BrokerAccountNotFound()
        if locked.status == BrokerAccount.Status.DISABLED:
            raise BrokerAccountDisabled()
        locked.access_token = access_token
        _activate(locked, profile, now)
        locked.save(
            update_fields=[
                "access_token",
                "status",
                "broker_user_id",
                "last_validated_at",
                "token_expires_at",
                "updated_at",
            ]
        )
        emit(
            Event.B1_BROKER_AUTH_SUCCESS,
            user=locked.owner,
            message=f"Kite session of '{locked.label}' started",
            payload=_about(locked),
        )
        alert_resolve(kind="broker_token_expired", key=f"account:{locked.pk}", resolution="the user logged in again")
    return locked


def broker_account_mark_token_expired(*, account: BrokerAccount, reason: str = "") -> bool:
    """The broker said the session is dead (the engine calls this on BrokerAuthError): entries
    stop until the user logs in again. Only the caller that flips an active account records
    B2 and the L4 alert, so a burst of failing orders raises one alert, not one each."""
    now = timezone.now()
    with transaction.atomic():
        flipped = BrokerAccount.objects.filter(pk=account.pk, status=BrokerAccount.Status.ACTIVE).update(
            status=BrokerAccount.Status.TOKEN_EXPIRED, access_token="", updated_at=now
        )
        if flipped:
            about = {**_about(account), "reason": reason}
            emit(
                Event.B2_BROKER_AUTH_FAILED,
                user=account.owner,
                message=f"The broker session of '{account.label}' has expired",
                payload=about,
            )
            alert_raise(
                kind="broker_token_expired",
                key=f"account:{account.pk}",
                severity="warning",
                user=account.owner,
                message=f"Log in to your broker again: '{account.label}' cannot place new orders until you do",
                payload=about,
            )
    if flipped:
        account.status, account.access_token, account.updated_at = BrokerAccount.Status.TOKEN_EXPIRED, "", now
    return bool(flipped)


def broker_accounts_expire_sessions() -> int:
    """Kite sessions end at 06:00 Asia/Kolkata: flip every active account whose session has
    ended to token_expired (B2 + L4 each, once), so the user is told before the market opens
    rather than by the first failed order. Returns how many were flipped."""
    ended = BrokerAccount.objects.filter(status=BrokerAccount.Status.ACTIVE, token_expires_at__lte=timezone.now())
    return sum(
        broker_account_mark_token_expired(account=account, reason="the broker session ended for the day")
        for account in ended.select_related("owner").iterator()
    )


def kite_order_update_verify(*, account: BrokerAccount, payload: Mapping[str, object]) -> bool:
    """Whether a Kite order update (a postback, or the ticker's order message) was signed with
    the account's API secret: Kite's checksum is SHA-256(order_id + order_timestamp + api_secret).
    Compared in constant time; neither the secret nor the checksum's input is ever logged."""
    order_id, timestamp, checksum = payload.get("order_id"), payload.get("order_timestamp"), payload.get("checksum")
    if not (isinstance(order_id, str) and isinstance(timestamp, str) and isinstance(checksum, str)):
        return False
    if account.kind != BrokerAccount.Kind.KITE or not account.api_secret:
        return False
    expected = hashlib.sha256(f"{order_id}{timestamp}{account.api_secret}".encode()).hexdigest()
    return hmac.compare_digest(expected, checksum.strip().lower())


# The statuses whose update the engine acts on: an order's follow ends only on these, so the
# others (OPEN, TRIGGER PENDING...) would only cost a task each.
_FINAL_KITE_STATUSES = frozenset({"COMPLETE", "REJECTED", "CANCELLED"})


def kite_postback_receive(*, payload: Mapping[str, object]) -> int | None:
    """A Kite postback: the account it is for found by its ``user_id`` and proven by the
    checksum (else ``OrderUpdateForbidden``, and nothing changes), then a final update handed
    to execution (``ORDER_UPDATE``), which applies it idempotently. Returns the account's id."""
    user_id = payload.get("user_id")
    candidates = BrokerAccount.objects.filter(kind=BrokerAccount.Kind.KITE, broker_user_id=user_id).order_by("id")
    # One Kite user may be stored more than once (two of our users, one login): the secret decides.
    account = next((a for a in candidates if kite_order_update_verify(account=a, payload=payload)), None)
    if account is None:
        logger.warning("kite postback refused: checksum mismatch", extra={"broker_order_id": payload.get("order_id")})
        raise OrderUpdateForbidden()
    if str(payload.get("status") or "").upper() in _FINAL_KITE_STATUSES:
        update = {key: value for key, value in payload.items() if key != "checksum"}
        task_send(TaskName.ORDER_UPDATE, kwargs={"account_id": account.pk, "payload": update})
    return account.pk


def encrypted_fields_rotate() -> int:
    """Re-encrypt every value of every ``EncryptedTextField`` under the first key of
    FIELD_ENCRYPTION_KEYS, all or nothing, so that older keys can then be removed.
    Rows are locked as they are read: a token written meanwhile is never overwritten
    with the stale value read here. Returns the number of rows rewritten."""
    rotated = 0
    with transaction.atomic():
        for model in apps.get_models():
            names = [f.attname for f in model._meta.concrete_fields if isinstance(f, EncryptedTextField)]
            if not names:
                continue
            manager = model._default_manager
            # Reading decrypts with any key (a value no key opens aborts everything); writing
            # encrypts with the first. Keyset batches, not a server-side cursor: an abort
            # mid-way must not leave a cursor behind in a rolled-back transaction.
            rows = manager.select_for_update().order_by("pk")
            batch = list(rows.values_list("pk", *names)[:_ROTATION_BATCH])
            while batch:
                for pk, *values in batch:
                    manager.filter(pk=pk).update(**dict(zip(names, values, strict=True)))
                    rotated += 1
                batch = list(rows.filter(pk__gt=batch[-1][0]).values_list("pk", *names)[:_ROTATION_BATCH])
    return rotated


def instruments_store_all(*, instruments: Sequence[Instrument], exchanges: Sequence[str]) -> dict[str, int]:
    """Store a dump for these exchanges in one transaction, so the search never sees half a
    refresh; concurrent refreshes (beat's and an operator's) take turns on an advisory lock.
    Returns the rows kept per exchange (0: that exchange's dump was empty and left as it was)."""
    with transaction.atomic():
        transaction_lock(_INSTRUMENTS_LOCK_SPACE)
        now = timezone.now()
        kept = {
            exchange: instruments_store(InstrumentRow, exchange=exchange, instruments=instruments, refreshed_at=now)
            for exchange in exchanges
        }
        # The refresh rewrote the table: fresh statistics, or the planner, still costing the old
        # rows, may read the whole table where the search's index scans stop after a few rows.
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {InstrumentRow._meta.db_table}")
    logger.info("instrument list refreshed", extra={"instruments": kept})
    return kept


def instruments_refresh(*, exchanges: Sequence[str] | None = None) -> dict[str, int]:
    """Fetch each exchange's dump from ``INSTRUMENTS_BROKER`` (every fetch before the one write
    transaction: no row is held while the broker answers) and store it. A broker error raises."""
    exchanges = [e.upper() for e in exchanges or settings.INSTRUMENTS_EXCHANGES]
    adapter = dump_adapter_for(settings.INSTRUMENTS_BROKER)
    instruments = [instrument for exchange in exchanges for instrument in adapter.instruments(exchange)]
    return instruments_store_all(instruments=instruments, exchanges=exchanges)
