"""Account services: registration (U1), login (U2), refresh-token rotation and logout. Rotation
is claimed through the blacklist's unique constraint, so two requests racing with one refresh
token never both get a new pair (simplejwt's own get_or_create lets both through)."""

from dataclasses import dataclass

from django.contrib.auth import authenticate
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken
from rest_framework_simplejwt.utils import datetime_from_epoch

from algotrader.exceptions import ValidationFailed
from algotrader.users.exceptions import AccountLocked, EmailTaken, InvalidCredentials, InvalidToken
from algotrader.users.models import User
from monitoring.events import Event
from monitoring.services import emit


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


def _issue_tokens(user: User) -> TokenPair:
    refresh = RefreshToken.for_user(user)
    return TokenPair(access=str(refresh.access_token), refresh=str(refresh))


def user_login(*, request: HttpRequest, email: str, password: str) -> TokenPair:
    """Authenticate through django-axes (which counts failures and locks out) and issue tokens."""
    user = authenticate(request=request, email=email.strip().lower(), password=password)
    if user is None:
        if getattr(request, "axes_locked_out", False):
            raise AccountLocked()
        raise InvalidCredentials()
    assert isinstance(user, User)
    with transaction.atomic():
        pair = _issue_tokens(user)
        emit(Event.U2_USER_LOGGED_IN, user=user)
    return pair


def _verified_refresh(raw_token: str) -> RefreshToken:
    try:
        # Checks signature, expiry, type and the blacklist. (simplejwt's hint says Token, it takes str.)
        return RefreshToken(raw_token)  # type: ignore[arg-type]
    except TokenError as error:
        raise InvalidToken() from error


def _claim_refresh_token(token: RefreshToken) -> User:
    """Blacklist the token; exactly one caller per token succeeds (unique constraint)."""
    user_id = token.payload.get("user_id")
    user = User.objects.filter(pk=int(user_id), is_active=True).first() if user_id else None
    if user is None:
        raise InvalidToken()
    outstanding, _ = OutstandingToken.objects.get_or_create(
        jti=token["jti"],
        defaults={
            "user": user,
            "token": str(token),
            "created_at": token.current_time,
            "expires_at": datetime_from_epoch(token["exp"]),
        },
    )
    try:
        with transaction.atomic():
            BlacklistedToken.objects.create(token=outstanding)
    except IntegrityError as error:
        raise InvalidToken() from error
    return user


def token_refresh(*, refresh: str) -> TokenPair:
    token = _verified_refresh(refresh)
    with transaction.atomic():
        user = _claim_refresh_token(token)
        return _issue_tokens(user)


def token_logout(*, refresh: str) -> None:
    token = _verified_refresh(refresh)
    with transaction.atomic():
        _claim_refresh_token(token)
