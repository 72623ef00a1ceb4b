"""How operators hear of an alert: one transport per channel (email, a Slack-compatible webhook)
behind one interface. A failure says whether retrying can help (``permanent``), and the
delivery task retries only those."""

from __future__ import annotations

import smtplib
from typing import Protocol

import requests
from django.conf import settings
from django.core.mail import send_mail

from monitoring.logging import redact_text
from monitoring.models import Alert


class TransportError(Exception):
    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class Transport(Protocol):
    name: str

    def send(self, alert: Alert, *, stage: str) -> None: ...


def subject(alert: Alert, *, stage: str) -> str:
    state = "RESOLVED" if stage == "resolve" else alert.severity.upper()
    return redact_text(f"[algotrader {state}] {alert.kind}: {alert.message}")[:200]


def text(alert: Alert, *, stage: str) -> str:
    lines = [subject(alert, stage=stage), f"incident: {alert.kind} {alert.key} (alert #{alert.pk})"]
    lines.append(f"opened: {alert.opened_at.isoformat()}")
    if alert.user_id is not None:
        lines.append(f"user: #{alert.user_id}")
    if alert.strategy_id is not None:
        lines.append(f"strategy: #{alert.strategy_id}")
    if stage == "resolve" and alert.resolved_at is not None:
        lines.append(f"resolved: {alert.resolved_at.isoformat()} {alert.resolution}".rstrip())
    return redact_text("\n".join(lines))


class EmailTransport:
    name = "email"

    def send(self, alert: Alert, *, stage: str) -> None:
        try:
            send_mail(
                subject(alert, stage=stage),
                text(alert, stage=stage),
                settings.DEFAULT_FROM_EMAIL,
                settings.ALERT_EMAILS,
                fail_silently=False,
            )
        except (smtplib.SMTPException, OSError) as error:
            permanent = isinstance(error, smtplib.SMTPRecipientsRefused)
            raise TransportError(f"email: {type(error).__name__}", permanent=permanent) from error


class WebhookTransport:
    name = "webhook"

    def send(self, alert: Alert, *, stage: str) -> None:
        try:
            response = requests.post(
                settings.ALERT_WEBHOOK_URL,
                json={"text": text(alert, stage=stage)},
                timeout=settings.ALERT_WEBHOOK_TIMEOUT_SECONDS,
            )
        except requests.RequestException as error:
            raise TransportError(f"webhook: {type(error).__name__}") from error
        if response.status_code >= 400:
            # A 4xx other than rate limiting means the hook is wrong or gone: resending the same body cannot help.
            permanent = response.status_code < 500 and response.status_code != 429
            raise TransportError(f"webhook: HTTP {response.status_code}", permanent=permanent)


def configured() -> list[Transport]:
    channels: list[Transport] = []
    if settings.ALERT_EMAILS:
        channels.append(EmailTransport())
    if settings.ALERT_WEBHOOK_URL:
        channels.append(WebhookTransport())
    return channels
