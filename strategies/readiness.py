"""The morning readiness check: READINESS_MINUTES before a broker account's first BUY of the
day its runs (a strategy's day) are checked once (the session logged in, funds for the day's
BUYs at the last price, each instrument tradable, the venue open) and each gets an outcome; a
run not ready is alerted (L4), checked again at its BUY time and skipped if still not ready."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, Min, OuterRef
from django.utils import timezone

from brokers.adapters.base import Funds, Quote
from brokers.adapters.registry import adapter_for
from brokers.exceptions import BrokerAuthError, BrokerError
from brokers.models import BrokerAccount
from brokers.services import broker_account_mark_token_expired
from monitoring.events import Event
from monitoring.services import Emission, alert_raise, alert_resolve, emit_many
from strategies import calendar
from strategies.models import RunReadiness, Strategy

logger = logging.getLogger(__name__)

Reason = RunReadiness.Reason
ALERT_KIND = "run_not_ready"
# A claim this old still PENDING lost its check (a worker killed mid-way): the next pass redoes it.
STALE_CLAIM = timedelta(minutes=2)
# A pass stops taking accounts after this long (the orders worker runs it, and its BUYs come first).
PASS_SECONDS = 50
# Reasons the check found for sure; a broker it could not reach is no finding, so at the BUY
# time such a run goes ahead and the order path meets the outage with its own retries.
SKIPPING_REASONS = frozenset(reason for reason in Reason if reason is not Reason.BROKER_UNAVAILABLE)
_BROKER_NAMES = {BrokerAccount.Kind.KITE: "Kite"}


@dataclass
class Finding:
    """One run's outcome: ready, or the reason (the first that applies) and what to do."""

    reason: str = ""
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return not self.reason


def alert_key(strategy_id: int, day: date) -> str:
    return f"run:{strategy_id}:{day.isoformat()}"


# --- The periodic pass ----------------------------------------------------------------


def readiness_check_due(*, now: datetime | None = None) -> int:
    """Check every account whose next BUY of the day is within READINESS_MINUTES and whose
    runs have no outcome yet: each account's runs of that day are claimed together (a row per
    run, inserted once), so a redelivered or concurrent pass checks nothing twice. Returns how
    many runs were checked."""
    now = now or timezone.now()
    horizon = now + timedelta(minutes=settings.READINESS_MINUTES)
    checked = RunReadiness.objects.filter(strategy=OuterRef("pk"), day=OuterRef("trade_date"))
    due = (
        Strategy.objects.filter(status=Strategy.Status.RUNNING, buy_fired_at__isnull=True)
        .filter(buy_fire_at__gt=now, buy_fire_at__lte=horizon)
        .filter(~Exists(checked.exclude(status=RunReadiness.Status.PENDING, claimed_at__lt=now - STALE_CLAIM)))
        .values("broker_account_id", "trade_date")
        .annotate(first_buy=Min("buy_fire_at"))
        .order_by("first_buy")  # the soonest BUYs first
        .values_list("broker_account_id", "trade_date")
    )
    total = 0
    started = time.monotonic()
    for account_id, day in list(due):
        if time.monotonic() - started > PASS_SECONDS:
            break  # the next pass (a minute on) takes the rest: a pass never holds a worker long
        claimed = _claim(account_id=account_id, day=day, now=now)
        if not claimed:
            continue
        try:
            total += len(readiness_check_runs(strategy_ids=claimed, now=now))
        except Exception:
            # One account's broken check must not cost the others theirs; its claims go
            # stale and the pass after STALE_CLAIM takes them again.
            logger.exception("readiness: an account's check failed", extra={"broker_account_id": account_id})
    return total


def _claim(*, account_id: int, day: date, now: datetime) -> list[int]:
    """Take the account's unchecked runs of ``day`` (and any claim gone stale) for this pass."""
    readiness, strategy = RunReadiness._meta.db_table, Strategy._meta.db_table
    # The unique (strategy, day) decides between racing passes: a run is inserted by one only.
    sql = (
        f"INSERT INTO {readiness} (strategy_id, broker_account_id, day, status, reason, message, details,"  # noqa: S608 - names are ours, values are bound
        f" claimed_at, checks) SELECT id, broker_account_id, trade_date, %s, '', '', '{{}}', %s, 0 FROM {strategy}"
        f" WHERE broker_account_id = %s AND trade_date = %s AND status = 'RUNNING' AND buy_fired_at IS NULL"
        f" AND buy_fire_at > %s ON CONFLICT (strategy_id, day) DO NOTHING RETURNING strategy_id"
    )
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, [RunReadiness.Status.PENDING, now, account_id, day, now])
        claimed = [row[0] for row in cursor.fetchall()]
        stale = RunReadiness.objects.filter(
            broker_account_id=account_id, day=day, status=RunReadiness.Status.PENDING, claimed_at__lt=now - STALE_CLAIM
        )
        stale_ids = list(stale.values_list("pk", "strategy_id"))
        # Compare-and-set on the old claim time: one pass takes a stale claim over.
        for pk, strategy_id in stale_ids:
            if RunReadiness.objects.filter(pk=pk, claimed_at__lt=now - STALE_CLAIM).update(claimed_at=now):
                claimed.append(strategy_id)
    return claimed


# --- Checking -------------------------------------------------------------------------


def readiness_check_runs(*, strategy_ids: list[int], now: datetime | None = None) -> dict[int, Finding]:
    """Check these runs (one account's, of one day) and record each outcome: R1, and the
    run's L4 opened when not ready or resolved when ready again."""
    now = now or timezone.now()
    runs = list(Strategy.objects.select_related("broker_account", "owner").filter(pk__in=strategy_ids))
    if not runs:
        return {}
    findings = _evaluate(runs[0].broker_account, runs, now=now)
    for run in runs:
        _record(run, findings[run.pk], now=now)
    return findings


def _evaluate(account: BrokerAccount, runs: list[Strategy], *, now: datetime) -> dict[int, Finding]:
    findings = {run.pk: _venue_finding(run) for run in runs}
    open_runs = [run for run in runs if findings[run.pk].ready]
    if not open_runs:
        return findings  # a closed venue needs no broker call
    login = _session_finding(account, open_runs[0])
    if login is None:
        try:
            adapter = adapter_for(account)
            funds = adapter.funds()
            planned = _planned_runs(account, open_runs)
            quotes = adapter.quotes({(run.exchange, run.symbol) for run in planned})
        except BrokerAuthError as refused:
            broker_account_mark_token_expired(account=account, reason=f"readiness check: {refused.message}")
            login = _login_needed(account, open_runs[0])
        except BrokerError as error:
            logger.warning("readiness: broker unreachable", extra={"broker_account_id": account.pk})
            for run in open_runs:
                findings[run.pk] = Finding(
                    Reason.BROKER_UNAVAILABLE,
                    f"Could not reach {_broker(account)} to check this run ({type(error).__name__}): "
                    f"it is checked again at {run.buy_at:%H:%M}.",
                )
            return findings
    if login is not None:
        for run in open_runs:
            findings[run.pk] = _login_needed(account, run)
        return findings
    for run in open_runs:
        findings[run.pk] = _instrument_finding(run, quotes.get((run.exchange, run.symbol)))
    _funds_findings(account, runs=open_runs, planned=planned, quotes=quotes, funds=funds, findings=findings)
    return findings


def _venue_finding(run: Strategy) -> Finding:
    session = calendar.session_on(run.venue, run.trade_date)
    if session is not None and session.contains(run.buy_fire_at):
        return Finding()
    if session is None:
        return Finding(
            Reason.VENUE_CLOSED,
            f"{run.venue} does not trade on {run.trade_date:%a %d %b %Y}: this run is skipped.",
            {"day": run.trade_date.isoformat()},
        )
    return Finding(
        Reason.VENUE_CLOSED,
        f"{run.venue} is closed at {run.buy_at:%H:%M} on {run.trade_date:%a %d %b %Y}: this run is skipped.",
        {"opens": session.opens.isoformat(), "closes": session.closes.isoformat()},
    )


def _session_finding(account: BrokerAccount, run: Strategy) -> Finding | None:
    """The account as we hold it: active, and its session lasting past the BUY."""
    ended = account.token_expires_at is not None and account.token_expires_at <= run.buy_fire_at
    if account.status != BrokerAccount.Status.ACTIVE or ended:
        return _login_needed(account, run)
    return None


def _login_needed(account: BrokerAccount, run: Strategy) -> Finding:
    if account.status == BrokerAccount.Status.DISABLED:
        message = f"The broker account '{account.label}' is disabled: this run cannot trade."
    else:
        message = f"Log in to {_broker(account)} before {run.buy_at:%H:%M}: the session of '{account.label}' has ended."
    return Finding(Reason.LOGIN_REQUIRED, message, {"account_status": account.status})


def _instrument_finding(run: Strategy, quote: Quote | None) -> Finding:
    instrument = f"{run.exchange}:{run.symbol}"
    if quote is None:
        return Finding(
            Reason.INSTRUMENT_SUSPENDED,
            f"{instrument} is not tradable today (suspended, or not quoted by the broker): "
            f"this run is skipped unless it trades again by {run.buy_at:%H:%M}.",
        )
    if quote.at_circuit:
        at_upper = quote.upper_circuit is not None and quote.last_price >= quote.upper_circuit
        return Finding(
            Reason.AT_CIRCUIT,
            f"{instrument} is at its {'upper' if at_upper else 'lower'} circuit limit ({quote.last_price}): "
            f"this run is skipped if it still is at {run.buy_at:%H:%M}.",
            {
                "last_price": str(quote.last_price),
                "lower_circuit": str(quote.lower_circuit),
                "upper_circuit": str(quote.upper_circuit),
            },
        )
    return Finding(details={"last_price": str(quote.last_price)})


def _planned_runs(account: BrokerAccount, runs: list[Strategy]) -> list[Strategy]:
    """The account's BUYs still to come that day and the runs judged, in firing order: funds
    must cover each run and every BUY ahead of it (a BUY already made is in the broker's funds)."""
    day = runs[0].trade_date
    pending = Strategy.objects.filter(
        broker_account=account, trade_date=day, status=Strategy.Status.RUNNING, buy_fired_at__isnull=True
    ).exclude(pk__in=[run.pk for run in runs])
    return sorted([*pending, *runs], key=lambda run: (run.buy_fire_at, run.pk))


def _funds_findings(
    account: BrokerAccount,
    *,
    runs: list[Strategy],
    planned: list[Strategy],
    quotes: dict[tuple[str, str], Quote],
    funds: Funds,
    findings: dict[int, Finding],
) -> None:
    judged = {run.pk for run in runs}
    rate = Decimal(settings.READINESS_MARGIN_PERCENT) / 100
    needed = Decimal(0)
    for run in planned:
        quote = quotes.get((run.exchange, run.symbol))
        finding = findings.get(run.pk)
        if quote is None or quote.at_circuit or (finding is not None and not finding.ready):
            continue  # skipped anyway: it will not spend
        needed += (run.quantity * quote.last_price * rate).quantize(Decimal("0.01"))
        if run.pk not in judged:
            continue
        assert finding is not None
        finding.details.update(needed=str(needed), available=str(funds.available))
        if funds.available is not None and needed > funds.available:
            finding.reason = Reason.FUNDS_SHORT
            finding.message = (
                f"Add funds to '{account.label}' before {run.buy_at:%H:%M}: its BUYs up to this one need "
                f"{needed} at the last price, {funds.available} is available."
            )


def _broker(account: BrokerAccount) -> str:
    return _BROKER_NAMES.get(BrokerAccount.Kind(account.kind), "your broker")


def _record(run: Strategy, finding: Finding, *, now: datetime) -> None:
    """The outcome, its R1, and the run's alert opened (not ready) or resolved (ready)."""
    status = RunReadiness.Status.READY if finding.ready else RunReadiness.Status.NOT_READY
    day = run.trade_date
    with transaction.atomic():
        row = RunReadiness.objects.select_for_update().filter(strategy=run, day=day).first()
        if row is None:  # checked at its BUY time with no morning check (started later)
            row = RunReadiness(strategy=run, broker_account_id=run.broker_account_id, day=day, claimed_at=now)
        row.status, row.reason, row.message, row.details = status, finding.reason, finding.message, finding.details
        row.checked_at, row.checks = now, row.checks + 1
        row.save()
        payload = {
            "strategy_id": run.pk,
            "day": day.isoformat(),
            "status": status.value,
            "reason": finding.reason,
            "symbol": run.symbol,
            **finding.details,
        }
        emit_many([Emission(Event.R1_READINESS_CHECKED, run.owner_id, run.pk, finding.message or "Ready", payload)])
        if finding.ready:
            alert_resolve(kind=ALERT_KIND, key=alert_key(run.pk, day), resolution="ready")
        else:
            alert_raise(
                kind=ALERT_KIND,
                key=alert_key(run.pk, day),
                severity="warning",
                strategy=run,
                message=finding.message,
                payload=payload,
            )


# --- The BUY time ---------------------------------------------------------------------


def run_buy_gate(*, strategy: Strategy, now: datetime | None = None) -> Finding | None:
    """At the BUY (the caller holds the strategy's lock): None lets it go ahead, else the
    finding it is skipped for. A run found ready, or never checked, costs this one read; one
    not ready (or whose check never finished) is checked again now, and skipped with R2 only
    if that finds it still not ready for sure."""
    now = now or timezone.now()
    status = (
        RunReadiness.objects.filter(strategy_id=strategy.pk, day=strategy.trade_date)
        .values_list("status", flat=True)
        .first()
    )
    if status is None or status == RunReadiness.Status.READY:
        return None
    try:
        finding = readiness_check_runs(strategy_ids=[strategy.pk], now=now).get(strategy.pk)
    except Exception:
        # A check that broke is no finding: the BUY must not crash on it, and the broker judges.
        logger.exception("readiness: the BUY-time check failed", extra={"strategy_id": strategy.pk})
        return None
    if finding is None or finding.reason not in SKIPPING_REASONS:
        return None
    payload = {
        "strategy_id": strategy.pk,
        "day": strategy.trade_date.isoformat(),
        "reason": finding.reason,
        "symbol": strategy.symbol,
    }
    with transaction.atomic():
        emit_many(
            [Emission(Event.R2_RUN_SKIPPED, strategy.owner_id, strategy.pk, f"Skipped: {finding.message}", payload)]
        )
        alert_resolve(
            kind=ALERT_KIND,
            key=alert_key(strategy.pk, strategy.trade_date),
            resolution="the run was skipped",
            message=f"Skipped at its BUY time: {finding.message}",
        )
    return finding
