"""The daily Kite login in one tap: a login link whose ``state`` (signed, short-lived, single
use) ties it to one user's broker account, and its completion where Kite sends the browser
back, which exchanges the request token through ``broker_account_create_session``."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core import signing
from django.utils import timezone

from algotrader import redis_keys
from algotrader.redis_client import get_redis
from algotrader.users.models import User
from brokers import selectors
from brokers.exceptions import (
    BrokerAccountDisabled,
    BrokerAccountNotFound,
    KiteLoginCancelled,
    KiteLoginFailed,
    KiteLoginForeign,
    KiteLoginStateExpired,
    KiteLoginStateInvalid,
    KiteLoginStateUsed,
)
from brokers.models import BrokerAccount
from brokers.services import broker_account_create_session, broker_account_login_url

logger = logging.getLogger(__name__)

# A state signed for this purpose only: no other signed value of the project passes for one.
_STATE_SALT = "brokers.kite_login.state"


@dataclass(frozen=True)
class KiteLogin:
    login_url: str
    expires_at: datetime


@dataclass(frozen=True)
class _StateClaim:
    user_id: int
    account_id: int
    nonce: str


def kite_login_start(*, account: BrokerAccount) -> KiteLogin:
    """Kite's login page for the account, with a state that only this account's login can
    complete, once, within ``KITE_LOGIN_STATE_TTL_SECONDS``. The signature proves who asked;
    the Redis nonce, deleted as the link is used, makes it single use."""
    if account.status == BrokerAccount.Status.DISABLED:
        raise BrokerAccountDisabled()
    ttl = settings.KITE_LOGIN_STATE_TTL_SECONDS
    nonce = secrets.token_urlsafe(16)
    state = signing.dumps({"u": account.owner_id, "a": account.pk, "n": nonce}, salt=_STATE_SALT)
    login_url = broker_account_login_url(account=account, redirect_params={"state": state})
    get_redis().set(redis_keys.kite_login_state(nonce), str(account.pk), ex=ttl)
    return KiteLogin(login_url=login_url, expires_at=timezone.now() + timedelta(seconds=ttl))


def kite_login_complete(*, state: str, status: str, request_token: str, browser_user: User | None) -> BrokerAccount:
    """Kite's redirect after the login page: check the state (signature, age, unused, the
    account it names is its user's), then exchange the request token for the day's session
    (B1, or B2 when Kite refuses it). ``browser_user`` is whoever this browser is signed in
    as here, if anyone: another user than the state's may not complete it. Every refusal
    raises a ``KiteLoginFailed`` or the broker's ``BrokerError``; the link is spent either way."""
    claim = _state_claim(state)
    if get_redis().getdel(redis_keys.kite_login_state(claim.nonce)) != str(claim.account_id):
        raise KiteLoginStateUsed()
    if status != "success":
        raise KiteLoginCancelled()
    if browser_user is not None and browser_user.pk != claim.user_id:
        logger.warning(
            "kite login refused: completed by another user",
            extra={"user_id": browser_user.pk, "broker_account_id": claim.account_id},
        )
        raise KiteLoginForeign()
    owner = User.objects.filter(pk=claim.user_id, is_active=True).first()
    if owner is None:
        raise KiteLoginStateInvalid()
    try:
        account = selectors.broker_account_get(user=owner, account_id=claim.account_id)
    except BrokerAccountNotFound as gone:  # deleted since the link was made
        raise KiteLoginStateInvalid() from gone
    if not request_token:
        raise KiteLoginFailed("Kite sent no valid request token: start the Kite login again from the app.")
    return broker_account_create_session(account=account, request_token=request_token)


def _state_claim(state: str) -> _StateClaim:
    try:
        claim = signing.loads(state, salt=_STATE_SALT, max_age=settings.KITE_LOGIN_STATE_TTL_SECONDS)
    except signing.SignatureExpired as expired:
        raise KiteLoginStateExpired() from expired
    except signing.BadSignature as bad:
        raise KiteLoginStateInvalid() from bad
    try:
        return _StateClaim(user_id=int(claim["u"]), account_id=int(claim["a"]), nonce=str(claim["n"]))
    except (KeyError, TypeError, ValueError) as malformed:  # signed by us, so never in practice
        raise KiteLoginStateInvalid() from malformed
