"""Simulated Kite users: API key and secret, the login flow's one-time request
tokens and the access token they are exchanged for (with Kite's checksum), and
the session payload Kite returns."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal

from brokers.kite_sim.clock import kite_time
from brokers.kite_sim.errors import input_error, token_error

DEMO_API_KEY = "kitesim_demo_key"
DEMO_API_SECRET = "kitesim_demo_secret"  # noqa: S105 - a published demo credential, valid only against the simulator
DEMO_ACCESS_TOKEN = "kitesim_demo_access_token"  # noqa: S105 - same
DEMO_USER_ID = "SIM001"
DEFAULT_REDIRECT_URL = "http://127.0.0.1:8000/kite/callback/"  # KITE_REDIRECT_URL's default
DEFAULT_OPENING_BALANCE = Decimal("1000000")
REQUEST_TOKEN_TTL = 300.0  # Kite's request tokens live a few minutes and are single use

EXCHANGES = ["NSE", "BSE", "NFO", "BFO", "CDS", "MCX"]
PRODUCTS = ["CNC", "NRML", "MIS", "BO", "CO"]
ORDER_TYPES = ["MARKET", "LIMIT", "SL", "SL-M"]


@dataclass(frozen=True)
class SimAccount:
    """What a test needs to talk to the simulator as one Kite user."""

    api_key: str
    api_secret: str
    access_token: str
    user_id: str
    user_name: str = "Sim Trader"
    email: str = "trader@kitesim.invalid"

    def __repr__(self) -> str:  # never print secrets, not even in a traceback
        return f"SimAccount(api_key={self.api_key[:4]}…, user_id={self.user_id})"


@dataclass
class AccountState:
    api_key: str
    api_secret: str
    access_token: str | None
    user_id: str
    user_name: str
    email: str
    opening_balance: Decimal
    redirect_url: str
    request_tokens: dict[str, float] = field(default_factory=dict)  # token -> expiry
    # The app's postback URL (developers.kite.trade): every order update is POSTed there too.
    postback_url: str = ""
    login_time: float = field(default_factory=time.time)

    def public(self) -> SimAccount:
        return SimAccount(
            api_key=self.api_key,
            api_secret=self.api_secret,
            access_token=self.access_token or "",
            user_id=self.user_id,
            user_name=self.user_name,
            email=self.email,
        )

    def profile(self) -> dict[str, object]:
        return {
            "user_id": self.user_id,
            "user_type": "individual",
            "email": self.email,
            "user_name": self.user_name,
            "user_shortname": self.user_name.split()[0],
            "broker": "ZERODHA",
            "exchanges": EXCHANGES,
            "products": PRODUCTS,
            "order_types": ORDER_TYPES,
            "avatar_url": None,
            "meta": {"demat_consent": "physical"},
        }


class Accounts:
    def __init__(self) -> None:
        self._by_key: dict[str, AccountState] = {}
        self._lock = threading.Lock()
        self._serial = 0

    def create(
        self,
        *,
        api_key: str | None = None,
        api_secret: str | None = None,
        access_token: str | None = None,
        user_id: str | None = None,
        user_name: str = "Sim Trader",
        opening_balance: Decimal = DEFAULT_OPENING_BALANCE,
        redirect_url: str = DEFAULT_REDIRECT_URL,
        postback_url: str = "",
    ) -> AccountState:
        with self._lock:
            self._serial += 1
            state = AccountState(
                api_key=api_key or f"sim{secrets.token_hex(8)}",
                api_secret=api_secret or secrets.token_hex(16),
                access_token=access_token or secrets.token_hex(16),
                user_id=user_id or f"SIM{self._serial:03d}",
                user_name=user_name,
                email=f"{(user_id or f'sim{self._serial:03d}').lower()}@kitesim.invalid",
                opening_balance=opening_balance,
                redirect_url=redirect_url,
                postback_url=postback_url,
            )
            if state.api_key in self._by_key:
                raise ValueError(f"api_key {state.api_key!r} already exists")
            self._by_key[state.api_key] = state
            return state

    def get(self, api_key: str) -> AccountState | None:
        return self._by_key.get(api_key)

    def all(self) -> list[AccountState]:
        return list(self._by_key.values())

    def authenticate(self, authorization: str | None) -> AccountState:
        """``Authorization: token api_key:access_token``, as every v3 call sends it."""
        if not authorization or not authorization.startswith("token "):
            raise token_error()
        api_key, _, access_token = authorization[len("token ") :].partition(":")
        state = self._by_key.get(api_key)
        if state is None or state.access_token is None or not hmac.compare_digest(state.access_token, access_token):
            raise token_error()
        return state

    def check_token(self, api_key: str, access_token: str) -> AccountState | None:
        state = self._by_key.get(api_key)
        if state is None or state.access_token is None or not hmac.compare_digest(state.access_token, access_token):
            return None
        return state

    def issue_request_token(self, api_key: str) -> str:
        state = self._by_key.get(api_key)
        if state is None:
            raise input_error("Invalid `api_key`.")
        token = secrets.token_hex(16)
        with self._lock:
            state.request_tokens[token] = time.monotonic() + REQUEST_TOKEN_TTL
        return token

    def exchange_request_token(self, *, api_key: str, request_token: str, checksum: str) -> dict[str, object]:
        """``POST /session/token``: checksum = SHA-256(api_key + request_token + api_secret)."""
        state = self._by_key.get(api_key)
        if state is None:
            raise input_error("Invalid `api_key`.")
        expected = hashlib.sha256((api_key + request_token + state.api_secret).encode()).hexdigest()
        if not hmac.compare_digest(expected, checksum):
            raise token_error("Invalid `checksum`.")
        with self._lock:
            expiry = state.request_tokens.pop(request_token, None)
            if expiry is None or expiry < time.monotonic():
                raise token_error("Token is invalid or has expired.")
            if state.access_token is None:
                state.access_token = secrets.token_hex(16)
            state.login_time = time.time()
        return {
            **state.profile(),
            "api_key": state.api_key,
            "access_token": state.access_token,
            "public_token": hashlib.sha256(state.access_token.encode()).hexdigest()[:32],
            "refresh_token": "",
            "enctoken": "",
            "login_time": kite_time(state.login_time),
        }

    def invalidate(self, *, api_key: str, access_token: str) -> None:
        """``DELETE /session/token``: the access token stops working at once."""
        state = self.check_token(api_key, access_token)
        if state is None:
            raise token_error()
        with self._lock:
            state.access_token = None

    def expire(self, api_key: str) -> None:
        """What Kite does every morning around 6 AM: the token dies, a new login is needed."""
        state = self._by_key.get(api_key)
        if state is None:
            raise KeyError(api_key)
        with self._lock:
            state.access_token = None
