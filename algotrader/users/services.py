"""Account services: registration (U1), login (U2), refresh-token rotation and logout, password
change and reset, ending a session, erasing a deleted account's person. A refresh
token is kept only as its jti and a hash (``RefreshTokenRecord``); rotation is a compare-and-set on
that row, so two requests racing with one token never both get a new pair, and a rotated token
presented again revokes its whole family."""

import hashlib
import hmac
import logging
import uuid
from dataclasses import dataclass

from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from axes.utils import reset as axes_reset
from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.password_validation import validate_password
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlencode, urlsafe_base64_decode, urlsafe_base64_encode
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import RefreshToken
from rest_framework_simplejwt.utils import datetime_from_epoch

from algotrader import redis_keys
from algotrader.celery import task_send
from algotrader.exceptions import ValidationFailed
from algotrader.queues import TaskName
from algotrader.redis_client import get_redis
from algotrader.users.exceptions import AccountLocked, InvalidCredentials, InvalidToken, SessionNotFound
from algotrader.users.models import USER_AGENT_MAX, RefreshTokenRecord, User
from algotrader.users.selectors import session_list
from algotrader.users.sockets import user_sockets_close
from monitoring.events import Event
from monitoring.services import emit

logger = logging.getLogger(__name__)

FAMILY_CLAIM = "family"
# A reset email not sent within this long is not sent (its task expires), and a delivered
# one is remembered as long, so that a redelivery sends no second one.
RESET_MAIL_EXPIRES_SECONDS = 3600


@dataclass(frozen=True)
class TokenPair:
    access: str
    refresh: str


@dataclass(frozen=True)
class Client:
    """Where a login or refresh came from, shown to the user in their list of sessions."""

    user_agent: str = ""
    ip_address: str | None = None


def user_register(*, email: str, password: str) -> str:
    """Create the account (U1) and return the normalised email. An email that has an account
    already gets the same answer, after the same work (a password hash), and its owner an
    email saying so: the answer must not tell anyone which emails have accounts."""
    email = User.objects.normalize_email(email).lower()
    _password_validate(password, user=User(email=email), field="password")
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


def _password_validate(password: str, *, user: User, field: str) -> None:
    """Django's validators (ours among them), refused as a 400 on ``field``."""
    try:
        validate_password(password, user=user)
    except DjangoValidationError as error:
        raise ValidationFailed(fields={field: list(error.messages)}) from error


def _sha256(raw_token: str) -> str:
    return hashlib.sha256(raw_token.encode()).hexdigest()


def tokens_issue(*, user: User, family: uuid.UUID | None = None, client: Client | None = None) -> TokenPair:
    """A new pair; the refresh token recorded by jti and hash only, in ``family`` (a new one
    at login), with the client it went to. Runs inside the caller's transaction."""
    client = client or Client()
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
        user_agent=client.user_agent[:USER_AGENT_MAX],
        ip_address=client.ip_address,
    )
    return TokenPair(access=str(refresh.access_token), refresh=raw)


def user_login(*, request: HttpRequest, email: str, password: str, client: Client | None = None) -> TokenPair:
    """Authenticate through django-axes (which counts failures and locks out) and issue tokens."""
    user = authenticate(request=request, email=email.strip().lower(), password=password)
    if user is None:
        if getattr(request, "axes_locked_out", False):
            raise AccountLocked()
        raise InvalidCredentials()
    assert isinstance(user, User)
    with transaction.atomic():
        pair = tokens_issue(user=user, client=client)
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


def token_refresh(*, refresh: str, client: Client | None = None) -> TokenPair:
    user, record = _claim_refresh_token(refresh)
    with transaction.atomic():
        return tokens_issue(user=user, family=record.family, client=client)


def token_logout(*, refresh: str) -> None:
    """End the login the token belongs to: the token and every other of its family."""
    user, record = _claim_refresh_token(refresh)
    _family_revoke(record.family)
    user_sockets_close(user_id=user.pk, family=record.family, reason="logged_out")


def _sessions_end(*, user: User, keep: uuid.UUID | None, reason: str) -> int:
    """Revoke every login of the user but ``keep`` (every one when None), and close their
    sockets once committed. Runs inside the caller's transaction."""
    records = RefreshTokenRecord.objects.filter(user=user, revoked_at__isnull=True)
    if keep is not None:
        records = records.exclude(family=keep)
    families = set(records.values_list("family", flat=True))
    revoked = token_families_revoke(families=families)
    if keep is None:
        user_sockets_close(user_id=user.pk, reason=reason)
    else:
        for family in families:
            user_sockets_close(user_id=user.pk, family=family, reason=reason)
    return revoked


def user_password_change(
    *, user: User, current_password: str, new_password: str, current_session: uuid.UUID | None
) -> None:
    """Change the password and end every other login: whoever else holds a refresh token of
    this account loses it. ``current_session`` (the family the caller's access token names)
    stays logged in. The row is locked so that two changes racing both check against the
    password the other replaces: one of them fails its check."""
    with transaction.atomic():
        user = User.objects.select_for_update().get(pk=user.pk)
        if not user.check_password(current_password):
            raise ValidationFailed(fields={"current_password": ["The current password is wrong."]})
        _password_validate(new_password, user=user, field="new_password")
        user.set_password(new_password)
        user.save(update_fields=["password"])
        ended = _sessions_end(user=user, keep=current_session, reason="password_changed")
    logger.info("password changed", extra={"user_id": user.pk, "tokens_revoked": ended})


def password_reset_request(*, email: str) -> str:
    """Send a reset link if the email has an active account, off the request path: the
    request does the same work whoever asks (the task looks the account up), so neither the
    answer nor its timing tells whether the email is registered."""
    email = User.objects.normalize_email(email).lower()
    request_id = uuid.uuid4().hex
    transaction.on_commit(lambda: task_send(TaskName.RESET_LINK_SEND, args=(email, request_id)))
    return email


def password_reset_send(*, email: str, request_id: str) -> None:
    """Mail the owner of ``email`` a link with Django's reset token, which dies when the
    password changes (so it works once) or after ``PASSWORD_RESET_TIMEOUT``. One email per
    request, however often its task is delivered: the request is claimed in Redis first, and
    released if the mail fails, so a redelivery tries again."""
    user = User.objects.filter(email__iexact=email, is_active=True).first()
    if user is None or not user.has_usable_password():
        return
    redis = get_redis()
    claim = redis_keys.reset_mail_sent(request_id)
    if not redis.set(claim, 1, nx=True, ex=RESET_MAIL_EXPIRES_SECONDS):
        return
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    query = urlencode({"uid": uid, "token": default_token_generator.make_token(user)})
    try:
        send_mail(
            subject="Reset your algotrader password",
            message=(
                "Someone, perhaps you, asked to reset the password of the algotrader account of this email "
                f"address. To choose a new one, open this link:\n\n{settings.PASSWORD_RESET_URL}?{query}\n\n"
                "It works once. If you did not ask, ignore this message: your password has not changed."
            ),
            from_email=None,
            recipient_list=[user.email],
        )
    except Exception:
        redis.delete(claim)
        raise


_RESET_LINK_INVALID = "This reset link is invalid, has expired or has been used."


def password_reset_confirm(*, uid: str, token: str, new_password: str) -> None:
    """Set the password a reset link's owner chose, and end every login of the account.
    The row is locked and the token checked against it, so of two uses of one link racing,
    the second sees the new password and fails: the link works once."""
    try:
        user_id = int(urlsafe_base64_decode(uid).decode())
    except (ValueError, UnicodeDecodeError):
        user_id = 0
    with transaction.atomic():
        user = None
        if 0 < user_id < 2**63:
            user = User.objects.select_for_update().filter(pk=user_id, is_active=True).first()
        if user is None or not default_token_generator.check_token(user, token):
            raise ValidationFailed(fields={"token": [_RESET_LINK_INVALID]})
        _password_validate(new_password, user=user, field="new_password")
        user.set_password(new_password)
        user.save(update_fields=["password"])
        ended = _sessions_end(user=user, keep=None, reason="password_reset")
        # Whoever proved they read the mailbox is not locked out by failed logins before it.
        axes_reset(username=user.email)
    logger.info("password reset", extra={"user_id": user.pk, "tokens_revoked": ended})


def session_revoke(*, user: User, session_id: uuid.UUID) -> None:
    """End one of the user's logins (a family), as a logout from elsewhere would; another
    user's session, or one already ended, is not found."""
    if not session_list(user=user).filter(family=session_id).exists():
        raise SessionNotFound()
    token_families_revoke(families={session_id})
    user_sockets_close(user_id=user.pk, family=session_id, reason="session_revoked")


def user_erase(*, user: User) -> None:
    """What deleting an account does to the user: the row stays (the records a broker-facing
    system keeps point at it) but no longer names the person: email replaced, password
    unusable, deactivated (its sockets close), every refresh token and failed-login record
    gone. Runs inside the caller's transaction."""
    email = user.email
    # No domain of a dot: not an address anyone can register (or anything can mail), so never taken.
    user.email = f"deleted-{user.pk}@deleted"
    user.set_unusable_password()
    user.is_active = user.is_staff = user.is_superuser = False
    user.last_login = None
    user.save()
    user.groups.clear()
    user.user_permissions.clear()
    RefreshTokenRecord.objects.filter(user=user).delete()
    for model in (AccessAttempt, AccessFailureLog, AccessLog):
        model.objects.filter(username__iexact=email).delete()
