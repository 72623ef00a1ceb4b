"""Firebase Cloud Messaging HTTP v1: one message to one registration token, authorised by an
OAuth2 access token that the service account's key obtains (a JWT signed RS256 with
``cryptography``, exchanged at the key's token_uri) and that Redis keeps for every worker."""

from __future__ import annotations

import base64
import json
import logging
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from algotrader import redis_keys
from algotrader.redis_client import get_redis

logger = logging.getLogger("algotrader.notifications")

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASSERTION_SECONDS = 3600
# An access token is used only while it has this long left: a push never carries one that
# expires on its way.
TOKEN_MARGIN_SECONDS = 300


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


@dataclass(frozen=True)
class ServiceAccount:
    client_email: str
    private_key: rsa.RSAPrivateKey
    private_key_id: str
    token_uri: str
    project_id: str


def push_enabled() -> bool:
    return bool(settings.FCM_SERVICE_ACCOUNT_KEY)


def service_account() -> ServiceAccount:
    """The configured service account (``FCM_SERVICE_ACCOUNT_KEY``: a path or the JSON);
    ImproperlyConfigured, never the key's text, when it is not one."""
    return _service_account(settings.FCM_SERVICE_ACCOUNT_KEY, settings.FCM_PROJECT_ID, settings.FCM_TOKEN_URI)


@lru_cache(maxsize=4)
def _service_account(raw: str, project_id: str, token_uri: str) -> ServiceAccount:
    text = raw.strip()
    try:
        if not text.startswith("{"):
            text = Path(text).read_text()
        key = json.loads(text)
        private_key = serialization.load_pem_private_key(key["private_key"].encode(), password=None)
        account = ServiceAccount(
            client_email=str(key["client_email"]),
            private_key=private_key,  # type: ignore[arg-type]  # checked just below
            private_key_id=str(key.get("private_key_id", "")),
            token_uri=token_uri or str(key["token_uri"]),
            project_id=project_id or str(key["project_id"]),
        )
    except (OSError, ValueError, KeyError, TypeError) as error:
        # The error's text may quote the key: only its kind is said.
        raise ImproperlyConfigured(
            f"FCM_SERVICE_ACCOUNT_KEY is not a service account key file or JSON ({type(error).__name__})"
        ) from None
    if not isinstance(account.private_key, rsa.RSAPrivateKey):
        raise ImproperlyConfigured("FCM_SERVICE_ACCOUNT_KEY's private_key is not an RSA key")
    return account


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed_assertion(account: ServiceAccount, *, now: float | None = None) -> str:
    """The JWT (RFC 7523) that asks the token endpoint for an FCM access token."""
    issued = int(now if now is not None else time.time())
    header = {"alg": "RS256", "typ": "JWT", "kid": account.private_key_id}
    claims = {
        "iss": account.client_email,
        "scope": SCOPE,
        "aud": account.token_uri,
        "iat": issued,
        "exp": issued + ASSERTION_SECONDS,
    }
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = account.private_key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64(signature)}"


def access_token(account: ServiceAccount, *, fresh: bool = False) -> str:
    """An access token for FCM: Redis's copy while it has more than the margin left, else a
    new one from the token endpoint (``fresh``: FCM refused the copy)."""
    key = redis_keys.fcm_access_token(account.client_email)
    redis = get_redis()
    if not fresh:
        cached = redis.get(key)
        if cached:
            return str(cached)
    try:
        response = requests.post(
            account.token_uri,
            data={"grant_type": GRANT_TYPE, "assertion": signed_assertion(account)},
            timeout=settings.FCM_TIMEOUT_SECONDS,
        )
    except requests.RequestException as error:
        raise FcmError(f"token endpoint: {type(error).__name__}", permanent=False) from None
    if response.status_code == 429 or response.status_code >= 500:
        raise FcmError(f"token endpoint: HTTP {response.status_code}", permanent=False)
    if response.status_code != 200:
        # 400/401 (invalid_grant: a revoked key, a clock far off) needs an operator, not a retry.
        raise FcmAuthError(f"token endpoint refused the service account: HTTP {response.status_code}")
    try:
        body = response.json()
        token, lifetime = str(body["access_token"]), int(body.get("expires_in", 3600))
    except (ValueError, KeyError, TypeError):
        raise FcmError("token endpoint: no access_token in its answer", permanent=False) from None
    if lifetime > TOKEN_MARGIN_SECONDS:
        redis.set(key, token, ex=lifetime - TOKEN_MARGIN_SECONDS)
    return token


def send(*, token: str, message: dict[str, Any]) -> None:
    """Send ``message`` (FCM's Message without its token) to one registration token; raises
    FcmError, or FcmAuthError when Google refuses the account. A 401 means the cached access
    token was revoked: one more try with a new one."""
    account = service_account()
    url = f"{settings.FCM_ENDPOINT}/v1/projects/{account.project_id}/messages:send"
    body = {"message": {**message, "token": token}}
    for fresh in (False, True):
        headers = {"Authorization": f"Bearer {access_token(account, fresh=fresh)}"}
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
        return FcmError(described, permanent=False, retry_after=_retry_after(response))
    return FcmError(described, permanent=True)


def _about_the_token(error: dict[str, Any], details: list[dict[str, Any]]) -> bool:
    """Whether a 400 INVALID_ARGUMENT blames the registration token, not the message we built."""
    for detail in details:
        for violation in detail.get("fieldViolations") or []:
            if isinstance(violation, dict) and violation.get("field") == "message.token":
                return True
    return "registration token" in str(error.get("message", "")).lower()


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    return float(value) if value.isdigit() else None
