"""Firebase Cloud Messaging HTTP v1: one message to one registration token, authorised by an
OAuth2 access token that google-auth gets with the service account's key (its signed JWT
exchanged at the key's token_uri) and that Redis keeps for every worker."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import google.auth.transport
import google.auth.transport.requests
import requests
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from google.auth.exceptions import GoogleAuthError, RefreshError, TransportError
from google.oauth2.service_account import Credentials

from algotrader import redis_keys
from algotrader.redis_client import get_redis

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
# An access token is used only while it has this long left: a push never carries one that
# expires on its way.
TOKEN_MARGIN_SECONDS = 300
# How long a token lasts when the token endpoint does not say: Google's usual lifetime.
TOKEN_DEFAULT_SECONDS = 3600

# google-auth writes the token it gets into the shared Credentials: one refresh at a time, so
# the token read back is the one this refresh got, with its expiry.
_refreshing = threading.Lock()


class FcmError(Exception):
    """A push that did not go through. ``permanent``: sending it again cannot help;
    ``dead_token``: FCM says the registration token will never take a message again."""

    def __init__(
        self, message: str, *, permanent: bool, dead_token: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.permanent = permanent or dead_token
        self.dead_token = dead_token
        self.retry_after = retry_after


class FcmAuthError(Exception):
    """Google refused the service account (a revoked or deleted key, a project without FCM):
    no push can go until an operator fixes it, so it fails the task, which alerts them."""


def push_enabled() -> bool:
    return bool(settings.FCM_SERVICE_ACCOUNT_KEY)


def service_account() -> Credentials:
    """The configured service account's credentials (``FCM_SERVICE_ACCOUNT_KEY``: a path or
    the JSON), scoped to FCM; ImproperlyConfigured, never the key's text, when it is not one."""
    return _credentials(settings.FCM_SERVICE_ACCOUNT_KEY, settings.FCM_PROJECT_ID, settings.FCM_TOKEN_URI)


@lru_cache(maxsize=4)
def _credentials(raw: str, project_id: str, token_uri: str) -> Credentials:
    text = raw.strip()
    try:
        if not text.startswith("{"):
            text = Path(text).read_text()
        info = json.loads(text)
        if not isinstance(info, dict):
            raise TypeError("not a JSON object")
        overrides = {name: value for name, value in (("project_id", project_id), ("token_uri", token_uri)) if value}
        credentials: Credentials = Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
            {**info, **overrides}, scopes=[SCOPE]
        )
        # google-auth takes any PEM key and fails only when it signs (an EC key): sign now, so
        # the system check finds it rather than the first push.
        credentials.sign_bytes(b"probe")
    except (OSError, ValueError, KeyError, TypeError, GoogleAuthError) as error:
        # The error's text may quote the key: only its kind is said.
        raise ImproperlyConfigured(
            f"FCM_SERVICE_ACCOUNT_KEY is not a service account key file or JSON ({type(error).__name__})"
        ) from None
    if not credentials.project_id:
        raise ImproperlyConfigured("FCM_SERVICE_ACCOUNT_KEY has no project_id, and FCM_PROJECT_ID is not set")
    return credentials


class _TokenEndpointBusy(TransportError):
    """The token endpoint answered 429 or 5xx: a retry, after its Retry-After, can cure it."""

    def __init__(self, status: int, retry_after: float | None) -> None:
        super().__init__(f"HTTP {status}")  # type: ignore[no-untyped-call]  # google-auth leaves it untyped
        self.status = status
        self.retry_after = retry_after


class _TokenRequest(google.auth.transport.requests.Request):
    """google-auth's transport to the token endpoint, with FCM_TIMEOUT_SECONDS (its own default
    is far longer) and one try. google-auth retries a 429 and most 5xx itself, sleeping in the
    worker's thread, deaf to Retry-After and under the push task's own retries, and takes the
    other 5xx (a 502) for a refusal of the key: each of these is a TransportError here, so the
    task's backoff alone retries it."""

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> google.auth.transport.Response:
        response: google.auth.transport.Response = super().__call__(  # type: ignore[no-untyped-call]
            url, method, body, headers, timeout=settings.FCM_TIMEOUT_SECONDS, **kwargs
        )
        status = int(response.status)
        if status in google.auth.transport.DEFAULT_RETRYABLE_STATUS_CODES or status >= 500:
            raise _TokenEndpointBusy(status, _retry_after(response.headers))
        return response


def access_token(credentials: Credentials, *, fresh: bool = False) -> str:
    """An access token for FCM: Redis's copy while it has more than the margin left, else a
    new one from the token endpoint (``fresh``: FCM refused the copy)."""
    key = redis_keys.fcm_access_token(credentials.service_account_email)
    redis = get_redis()
    if not fresh:
        cached = redis.get(key)
        if cached:
            return str(cached)
    token, lifetime = _new_access_token(credentials)
    if lifetime > TOKEN_MARGIN_SECONDS:
        redis.set(key, token, ex=lifetime - TOKEN_MARGIN_SECONDS)
    return token


def _new_access_token(credentials: Credentials) -> tuple[str, int]:
    """A new token and its seconds to live; FcmError for what a retry can cure, FcmAuthError
    when Google refuses the account (invalid_grant: a revoked key, a clock far off)."""
    try:
        with _refreshing, requests.Session() as session:
            credentials.refresh(_TokenRequest(session))  # type: ignore[no-untyped-call]
            token, expiry = str(credentials.token), credentials.expiry
    except _TokenEndpointBusy as error:
        raise FcmError(f"token endpoint: HTTP {error.status}", permanent=False, retry_after=error.retry_after) from None
    except TransportError as error:
        cause = error.__cause__ or error
        raise FcmError(f"token endpoint: {type(cause).__name__}", permanent=False) from None
    except RefreshError as error:
        if error.retryable:
            raise FcmError(f"token endpoint: {_said(error)}", permanent=False) from None
        raise FcmAuthError(f"token endpoint refused the service account: {_said(error)}") from None
    except (ValueError, TypeError):
        # A 200 whose body is not the token's JSON (a proxy's page): not the key's fault.
        raise FcmError("token endpoint: no access_token in its answer", permanent=False) from None
    if expiry is None:
        return token, TOKEN_DEFAULT_SECONDS
    # google-auth's expiry is a naive UTC datetime.
    return token, int((expiry - datetime.now(UTC).replace(tzinfo=None)).total_seconds())


def _said(error: RefreshError) -> str:
    """The token endpoint's error and description (``invalid_grant: Invalid JWT Signature.``),
    cut short: a proxy's answer may be a whole page."""
    return str(error.args[0] if error.args else error)[:200]


def send(*, token: str, message: dict[str, Any]) -> None:
    """Send ``message`` (FCM's Message without its token) to one registration token; raises
    FcmError, or FcmAuthError when Google refuses the account. A 401 means the cached access
    token was revoked: one more try with a new one."""
    credentials = service_account()
    url = f"{settings.FCM_ENDPOINT}/v1/projects/{credentials.project_id}/messages:send"
    body = {"message": {**message, "token": token}}
    for fresh in (False, True):
        headers = {"Authorization": f"Bearer {access_token(credentials, fresh=fresh)}"}
        try:
            response = requests.post(url, json=body, headers=headers, timeout=settings.FCM_TIMEOUT_SECONDS)
        except requests.RequestException as error:
            raise FcmError(f"FCM: {type(error).__name__}", permanent=False) from None
        if response.status_code != 401:
            break
    if response.status_code == 200:
        return
    if response.status_code == 401:
        raise FcmAuthError("FCM refused a new access token of the service account: HTTP 401")
    raise _error(response)


def _error(response: requests.Response) -> FcmError:
    status = response.status_code
    try:
        error = response.json().get("error", {})
    except ValueError:
        error = {}
    if not isinstance(error, dict):
        error = {}
    details = [detail for detail in error.get("details") or [] if isinstance(detail, dict)]
    codes = {str(detail.get("errorCode", "")) for detail in details} | {str(error.get("status", ""))}
    described = f"FCM: HTTP {status} {'/'.join(sorted(code for code in codes if code))}".rstrip()
    if status == 404 and ("UNREGISTERED" in codes or "NOT_FOUND" in codes):
        return FcmError(described, permanent=True, dead_token=True)
    if status == 400 and "INVALID_ARGUMENT" in codes and _about_the_token(error, details):
        return FcmError(described, permanent=True, dead_token=True)
    if status == 429 or status >= 500:
        return FcmError(described, permanent=False, retry_after=_retry_after(response.headers))
    return FcmError(described, permanent=True)


def _about_the_token(error: dict[str, Any], details: list[dict[str, Any]]) -> bool:
    """Whether a 400 INVALID_ARGUMENT blames the registration token, not the message we built."""
    for detail in details:
        for violation in detail.get("fieldViolations") or []:
            if isinstance(violation, dict) and violation.get("field") == "message.token":
                return True
    return "registration token" in str(error.get("message", "")).lower()


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After", "")
    return float(value) if value.isdigit() else None
