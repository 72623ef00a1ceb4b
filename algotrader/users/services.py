"""Account services: registration (U1), login (U2), refresh-token rotation and logout. A refresh
token is kept only as its jti and a hash (``RefreshTokenRecord``); rotation is a compare-and-set on
that row, so two requests racing with one token never both get a new pair, and a rotated token
presented again revokes its whole family."""

import hashlib
import hmac
import logging
import uuid
from dataclasses import dataclass

from django.contrib.auth import authenticate
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import RefreshToken
from rest_framework_simplejwt.utils import datetime_from_epoch

from algotrader.exceptions import ValidationFailed
from algotrader.users.exceptions import AccountLocked, EmailTaken, InvalidCredentials, InvalidToken
from algotrader.users.models import RefreshTokenRecord, User
from algotrader.users.sockets import user_sockets_close
from monitoring.events import Event
from monitoring.services import emit

logger = logging.getLogger(__name__)

FAMILY_CLAIM = "family"


@dataclass(frozen=True)
class TokenPair:
    access: str
    refresh: str


def user_register(*, email: str, password: str) -> User:
    email = User.objects.normalize_email(email).lower()
    try:
        validate_password(password, user=User(email=email))
    except DjangoValidationError as error:
        raise ValidationFailed(fields={"password": list(error.messages)}) from error
    try:
        with transaction.atomic():
            user = User.objects.create_user(email=email, password=password)
            emit(Event.U1_USER_REGISTERED, user=user)
    except IntegrityError as error:
        raise EmailTaken(fields={"email": [EmailTaken.message]}) from error
    return user


def _sha256(raw_token: str) -> str:
    return hashlib.sha256(raw_token.encode()).hexdigest()


def tokens_issue(*, user: User, family: uuid.UUID | None = None) -> TokenPair:
    """A new pair; the refresh token recorded by jti and hash only, in ``family`` (a new one
    at login). Runs inside the caller's transaction."""
    refresh = RefreshToken.for_user(user)
    family = family or uuid.uuid4()
    refresh[FAMILY_CLAIM] = str(family)
    raw = str(refresh)
    RefreshTokenRecord.objects.create(
        jti=refresh["jti"],
        token_sha256=_sha256(raw),
        family=family,
        user=user,
        created_at=timezone.now(),
        expires_at=datetime_from_epoch(refresh["exp"]),
    )
    return TokenPair(access=str(refresh.access_token), refresh=raw)


def user_login(*, request: HttpRequest, email: str, password: str) -> TokenPair:
    """Authenticate through django-axes (which counts failures and locks out) and issue tokens."""
    user = authenticate(request=request, email=email.strip().lower(), password=password)
    if user is None:
        if getattr(request, "axes_locked_out", False):
            raise AccountLocked()
        raise InvalidCredentials()
    assert isinstance(user, User)
    with transaction.atomic():
        pair = tokens_issue(user=user)
        emit(Event.U2_USER_LOGGED_IN, user=user)
    return pair


def _verified_refresh(raw_token: str) -> RefreshToken:
    try:
        # Checks signature, expiry and type. (simplejwt's hint says Token, it takes str.)
        return RefreshToken(raw_token)  # type: ignore[arg-type]
    except TokenError as error:
        raise InvalidToken() from error


def _family_revoke(family: uuid.UUID) -> int:
    return token_families_revoke(families={family})


def token_families_revoke(*, families: set[uuid.UUID]) -> int:
    """Revoke every refresh token of these logins (an operator's action, a logout, a reuse)."""
    return RefreshTokenRecord.objects.filter(family__in=families, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )


def _claim_refresh_token(raw_token: str) -> tuple[User, RefreshTokenRecord]:
    """Use the token up: exactly one caller per token wins (a conditional UPDATE). A token
    already used (rotated away or logged out) is reuse: its family is revoked, committed
    before the refusal is raised, so whoever holds the newer tokens of that login is out too."""
    token = _verified_refresh(raw_token)
    record = RefreshTokenRecord.objects.filter(jti=str(token.get("jti", ""))).select_related("user").first()
    if record is None or not hmac.compare_digest(record.token_sha256, _sha256(raw_token)):
        raise InvalidToken()
    now = timezone.now()
    won = RefreshTokenRecord.objects.filter(pk=record.pk, used_at__isnull=True, revoked_at__isnull=True).update(
        used_at=now
    )
    if not won:
        if record.revoked_at is None and _family_revoke(record.family):
            logger.warning("refresh token reused: its family is revoked", extra={"user_id": record.user_id})
            user_sockets_close(user_id=record.user_id, family=record.family, reason="session_revoked")
        raise InvalidToken()
    if not record.user.is_active:
        raise InvalidToken()
    return record.user, record


def token_refresh(*, refresh: str) -> TokenPair:
    user, record = _claim_refresh_token(refresh)
    with transaction.atomic():
        return tokens_issue(user=user, family=record.family)


def token_logout(*, refresh: str) -> None:
    """End the login the token belongs to: the token and every other of its family."""
    user, record = _claim_refresh_token(refresh)
    _family_revoke(record.family)
    user_sockets_close(user_id=user.pk, family=record.family, reason="logged_out")
