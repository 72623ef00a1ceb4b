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
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import RefreshToken
from rest_framework_simplejwt.utils import datetime_from_epoch

from algotrader.celery import task_send
from algotrader.exceptions import ValidationFailed
from algotrader.queues import TaskName
from algotrader.users.exceptions import AccountLocked, InvalidCredentials, InvalidToken
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


def user_register(*, email: str, password: str) -> str:
    """Create the account (U1) and return the normalised email. An email that has an account
    already gets the same answer, after the same work (a password hash), and its owner an
    email saying so: the answer must not tell anyone which emails have accounts."""
    email = User.objects.normalize_email(email).lower()
    try:
        validate_password(password, user=User(email=email))
    except DjangoValidationError as error:
        raise ValidationFailed(fields={"password": list(error.messages)}) from error
    try:
        with transaction.atomic():
            user = User.objects.create_user(email=email, password=password)
            emit(Event.U1_USER_REGISTERED, user=user)
    except IntegrityError:
        existing = User.objects.filter(email__iexact=email).values_list("pk", flat=True).first()
        if existing is not None:
            transaction.on_commit(lambda: task_send(TaskName.ACCOUNT_EXISTS_NOTIFY, args=(existing,)))
    return email


def account_exists_notify(*, user_id: int) -> None:
    """Tell the owner of an email that someone tried to register it again."""
    user = User.objects.filter(pk=user_id, is_active=True).first()
    if user is None:
        return
    send_mail(
        subject="You already have an algotrader account",
        message=(
            "Someone, perhaps you, tried to create an algotrader account with this email address, "
            "which already has one. If it was you, log in instead (or reset your password). "
            "If it was not, you can ignore this message: nothing has changed on your account."
        ),
        from_email=None,
        recipient_list=[user.email],
    )


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
