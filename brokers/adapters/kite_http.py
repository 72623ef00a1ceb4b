"""Kite Connect v3's HTTP transport: one ``requests.Session`` with Kite's headers,
form-encoded writes, the ``status``/``data`` envelope, and every failure mapped onto
``brokers.exceptions`` by what it says about whether the request took effect."""

from __future__ import annotations

import http.cookiejar
import logging
import os
import threading
import time
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, Final

import requests
import urllib3.exceptions

from brokers.adapters.base import Credentials
from brokers.exceptions import (
    AmbiguousOutcome,
    BrokerAuthError,
    BrokerError,
    BrokerUnavailable,
    OrderBusy,
    OrderRejected,
    RateLimited,
)

logger = logging.getLogger(__name__)

KITE_VERSION: Final = "3"

_BUSY_MESSAGE: Final = "being processed"
_PERMANENT_ORDER_ERRORS: Final = frozenset({"OrderException", "InputException", "MarginException", "HoldingException"})
_AUTH_ERRORS: Final = frozenset({"TokenException", "PermissionException"})


def _never_sent(exc: requests.RequestException) -> bool:
    """True when the failure happened before any byte of the request could reach Kite."""
    if isinstance(exc, requests.ConnectTimeout | requests.exceptions.SSLError | requests.exceptions.InvalidURL):
        return True
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        # urllib3 raises NewConnectionError (refused, unreachable, DNS: NameResolutionError) before sending.
        if isinstance(current, urllib3.exceptions.NewConnectionError | urllib3.exceptions.ConnectTimeoutError):
            return True
        if isinstance(current, urllib3.exceptions.MaxRetryError):
            pending.append(current.reason)
        pending.extend(arg for arg in current.args if isinstance(arg, BaseException))
        pending.extend([current.__cause__, current.__context__])
    return False


# Connections to Kite a process keeps open for reuse: a worker's threads at once, with room.
PROCESS_POOL_CONNECTIONS: Final = 32


def new_session(api_root: str, *, pool_connections: int = 10) -> requests.Session:
    """A session for Kite's API at ``api_root`` that keeps no cookie, so a session shared by
    accounts carries nothing of one into another's requests. Proxy and CA settings are read
    once here, because per request requests also reads ``~/.netrc``, whose entry for the host
    would replace the account's token with Basic auth."""
    session = requests.Session()
    session.headers.update({"X-Kite-Version": KITE_VERSION, "User-Agent": "algotrader-kite/1"})
    session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    adapter = requests.adapters.HTTPAdapter(pool_maxsize=pool_connections)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    environment = session.merge_environment_settings(api_root, {}, None, None, None)
    session.proxies.update(environment["proxies"])
    session.verify = environment["verify"]
    session.trust_env = False
    return session


_process_sessions: dict[str, requests.Session] = {}
_process_sessions_lock = threading.Lock()


def process_session(api_root: str) -> requests.Session:
    """The process's one session for the order path to ``api_root``, whose connection
    pool every account shares: Kite is one host, so a stop-loss finds a warm connection
    (no TCP and TLS handshake) whichever account it is for, not only when its own account
    traded from this process before."""
    with _process_sessions_lock:
        session = _process_sessions.get(api_root)
        if session is None:
            session = _process_sessions[api_root] = new_session(api_root, pool_connections=PROCESS_POOL_CONNECTIONS)
        return session


def process_session_close() -> None:
    """Close the process's sessions (their connections); the next order opens a new one."""
    with _process_sessions_lock:
        sessions = list(_process_sessions.values())
        _process_sessions.clear()
    for session in sessions:
        session.close()


def _forget_process_session() -> None:
    # A forked child (a prefork worker process) must not share its parent's sockets.
    global _process_sessions, _process_sessions_lock
    _process_sessions, _process_sessions_lock = {}, threading.Lock()


os.register_at_fork(after_in_child=_forget_process_session)


class KiteHttp:
    """No retries of its own (callers decide from ``permanent``): an order request is never
    sent twice. ``session``: one to borrow (``process_session``), which ``close`` leaves
    open; without it, a session of its own."""

    def __init__(
        self, credentials: Credentials, *, api_root: str, timeout: float, session: requests.Session | None = None
    ) -> None:
        self._credentials = credentials
        self._api_root = api_root.rstrip("/")
        self._timeout = timeout
        self._owns_session = session is None
        self._session = new_session(self._api_root) if session is None else session

    def close(self) -> None:
        if self._owns_session:
            self._session.close()

    def _send(
        self,
        method: str,
        path: str,
        *,
        form: Mapping[str, str] | None,
        params: Mapping[str, str | list[str]] | None,
        authenticated: bool,
        order_write: bool,
    ) -> requests.Response:
        headers = {}
        if authenticated:
            headers["Authorization"] = f"token {self._credentials.api_key}:{self._credentials.access_token}"
        started = time.monotonic()
        try:
            response = self._session.request(
                method,
                f"{self._api_root}{path}",
                data=form,
                params=params,
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            logger.warning(
                "kite %s %s failed after %.0f ms: %s",
                method,
                path,
                (time.monotonic() - started) * 1000,
                type(exc).__name__,
            )
            # `from None`: the requests exception holds the prepared request, Authorization header included.
            if _never_sent(exc):
                raise BrokerUnavailable(f"Kite could not be reached ({type(exc).__name__}).") from None
            if order_write:
                raise AmbiguousOutcome(
                    f"Kite did not answer {method} {path} ({type(exc).__name__}): the order may have been taken."
                ) from None
            raise BrokerUnavailable(f"Kite did not answer {method} {path} ({type(exc).__name__}).") from None
        logger.debug(
            "kite %s %s -> %s in %.0f ms", method, path, response.status_code, (time.monotonic() - started) * 1000
        )
        return response

    def request(
        self,
        method: str,
        path: str,
        *,
        form: Mapping[str, str] | None = None,
        params: Mapping[str, str | list[str]] | None = None,
        authenticated: bool = True,
        order_write: bool = False,
        secrets: Iterable[str] = (),
    ) -> Any:
        secrets = tuple(secrets)
        response = self._send(
            method,
            path,
            form=form,
            params=params,
            authenticated=authenticated,
            order_write=order_write,
        )
        try:
            body = response.json(parse_float=Decimal)
        except ValueError:
            body = None
        if response.ok and isinstance(body, Mapping) and body.get("status") != "error" and "data" in body:
            return body["data"]
        raise self._error(response, body, order_write=order_write, login=not authenticated, secrets=secrets)

    def request_csv(self, path: str) -> str:
        # Kite serves its instrument dump without a session: an adapter built without one (the
        # daily refresh's) sends no Authorization header rather than an empty, refused one.
        authenticated = bool(self._credentials.access_token)
        response = self._send("GET", path, form=None, params=None, authenticated=authenticated, order_write=False)
        if response.ok and "json" not in response.headers.get("Content-Type", ""):
            return response.content.decode("utf-8-sig")
        try:
            body = response.json(parse_float=Decimal)
        except ValueError:
            body = None
        raise self._error(response, body, order_write=False, login=False, secrets=())

    # Kite's errors onto ours, tabled in docs/trading.md. PermissionException and UserException are
    # the user's to fix (a right or segment not enabled, an account blocked), so they are permanent.
    def _error(
        self, response: requests.Response, body: object, *, order_write: bool, login: bool, secrets: tuple[str, ...]
    ) -> BrokerError:
        status = response.status_code
        envelope = body if isinstance(body, Mapping) else {}
        error_type = str(envelope.get("error_type") or "")
        message = self._redact(str(envelope.get("message") or f"Kite answered HTTP {status}."), secrets)
        logger.info(
            "kite %s %s -> %s %s", response.request.method, response.request.path_url.split("?")[0], status, error_type
        )

        if status == 429:
            return RateLimited(message, broker_error_type=error_type)
        if error_type in _AUTH_ERRORS:
            return BrokerAuthError(message, broker_error_type=error_type)
        if error_type == "UserException":
            cls = OrderRejected if order_write else BrokerAuthError
            return cls(message, broker_error_type=error_type)
        if error_type == "OrderException" and order_write and _BUSY_MESSAGE in message.lower():
            # "Order cannot be modified as it is being processed. Try later.": not a refusal.
            return OrderBusy(message, broker_error_type=error_type)
        if error_type in _PERMANENT_ORDER_ERRORS and order_write:
            return OrderRejected(message, broker_error_type=error_type)
        if error_type == "InputException" and login:
            # The login's own input (api key, request token, checksum) refused: the user's to fix.
            return BrokerAuthError(message, broker_error_type=error_type)
        if error_type in _PERMANENT_ORDER_ERRORS:
            # On a read (an order's history, the book) Kite's OrderException also means a
            # failed fetch: nothing about the order is refused, so the caller polls again.
            return BrokerUnavailable(message, broker_error_type=error_type)
        if not error_type and status in (401, 403):
            return BrokerAuthError(message)
        if order_write and (status >= 500 or response.ok):
            # NetworkException/DataException/GeneralException or a bare 5xx after the order was sent:
            # Kite's OMS may have taken it, so it must be looked up by tag, never blindly re-sent.
            return AmbiguousOutcome(message, broker_error_type=error_type)
        return BrokerUnavailable(message, broker_error_type=error_type)

    def _redact(self, text: str, extra: tuple[str, ...]) -> str:
        for secret in (self._credentials.access_token, self._credentials.api_secret, *extra):
            if len(secret) >= 8:  # shorter would redact ordinary words; real Kite secrets are 32 characters
                text = text.replace(secret, "***")
        return text
