"""A client of the public API exactly as the mobile app uses it (REST with a refreshed JWT, the
``/ws/v1/events/`` WebSocket): ``make demo`` and the end-to-end test drive the running system
through it and nothing else."""

from __future__ import annotations

import json
import queue
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
import websocket

FINAL_STATUSES = frozenset({"STOPPED", "EXITED"})


class ApiError(Exception):
    def __init__(self, method: str, path: str, response: requests.Response) -> None:
        self.status = response.status_code
        try:
            self.body: Any = response.json()
        except ValueError:
            self.body = response.text[:500]
        super().__init__(f"{method} {path} -> {self.status}: {self.body}")


class AppClient:
    def __init__(self, base_url: str, *, timeout: float = 15) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.http = requests.Session()
        self.access: str | None = None
        self.refresh: str | None = None

    # --- plumbing ---------------------------------------------------------------------

    def call(self, method: str, path: str, body: dict[str, Any] | None = None, *, auth: bool = True) -> Any:
        response = self._send(method, path, body, auth=auth)
        if response.status_code == 401 and auth and self.refresh:
            self._refresh()  # access tokens live minutes; the app refreshes and retries once
            response = self._send(method, path, body, auth=auth)
        if response.status_code >= 400:
            raise ApiError(method, path, response)
        return response.json() if response.content else None

    def _send(self, method: str, path: str, body: dict[str, Any] | None, *, auth: bool) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.access}"} if auth and self.access else {}
        return self.http.request(method, f"{self.base_url}{path}", json=body, headers=headers, timeout=self.timeout)

    def _refresh(self) -> None:
        tokens = self.call("POST", "/api/v1/auth/refresh/", {"refresh": self.refresh}, auth=False)
        self.access, self.refresh = tokens["access"], tokens["refresh"]

    # --- account ----------------------------------------------------------------------

    def register(self, email: str, password: str) -> dict[str, Any]:
        user: dict[str, Any] = self.call(
            "POST", "/api/v1/auth/register/", {"email": email, "password": password}, auth=False
        )
        return user

    def login(self, email: str, password: str) -> None:
        tokens = self.call("POST", "/api/v1/auth/login/", {"email": email, "password": password}, auth=False)
        self.access, self.refresh = tokens["access"], tokens["refresh"]

    # --- brokers ----------------------------------------------------------------------

    def connect_paper(self, label: str = "Paper") -> dict[str, Any]:
        account: dict[str, Any] = self.call("POST", "/api/v1/broker-accounts/", {"kind": "paper", "label": label})
        return account

    def submit_kite(self, *, api_key: str, api_secret: str, label: str = "Kite") -> dict[str, Any]:
        """The app's Kite keys, without a session yet: stored as ``login_required``."""
        account: dict[str, Any] = self.call(
            "POST",
            "/api/v1/broker-accounts/",
            {"kind": "kite", "label": label, "api_key": api_key, "api_secret": api_secret},
        )
        return account

    def kite_login(self, account_id: int) -> dict[str, Any]:
        """Kite's daily login as the app does it: open the login page the API names, take the
        ``request_token`` from Kite's redirect back and post it to ``/session/``."""
        login_url = self.login_url(account_id)
        redirect = requests.get(login_url, allow_redirects=False, timeout=self.timeout)
        location = redirect.headers.get("Location", "")
        tokens = parse_qs(urlsplit(location).query).get("request_token")
        if redirect.status_code not in (301, 302, 303) or not tokens:
            raise RuntimeError(f"the Kite login page at {login_url} did not redirect with a request_token")
        session: dict[str, Any] = self.call(
            "POST", f"/api/v1/broker-accounts/{account_id}/session/", {"request_token": tokens[0]}
        )
        return session

    def login_url(self, account_id: int) -> str:
        return str(self.call("GET", f"/api/v1/broker-accounts/{account_id}/login-url/")["login_url"])

    # --- strategies -------------------------------------------------------------------

    def create_strategy(self, **fields: Any) -> dict[str, Any]:
        strategy: dict[str, Any] = self.call("POST", "/api/v1/strategies/", fields)
        return strategy

    def update_strategy(self, strategy_id: int, **fields: Any) -> dict[str, Any]:
        strategy: dict[str, Any] = self.call("PATCH", f"/api/v1/strategies/{strategy_id}/", fields)
        return strategy

    def start(self, strategy_id: int) -> dict[str, Any]:
        strategy: dict[str, Any] = self.call("POST", f"/api/v1/strategies/{strategy_id}/start/")
        return strategy

    def stop(self, strategy_id: int, *, keep_position: bool = False) -> dict[str, Any]:
        strategy: dict[str, Any] = self.call(
            "POST", f"/api/v1/strategies/{strategy_id}/stop/", {"keep_position": keep_position}
        )
        return strategy

    def strategy(self, strategy_id: int) -> dict[str, Any]:
        strategy: dict[str, Any] = self.call("GET", f"/api/v1/strategies/{strategy_id}/")
        return strategy

    def strategies(self) -> list[dict[str, Any]]:
        return self._all_pages("/api/v1/strategies/")

    def timeline(self, strategy_id: int) -> list[dict[str, Any]]:
        """The strategy's events, oldest first, every page."""
        return self._all_pages(f"/api/v1/strategies/{strategy_id}/events/")

    def _all_pages(self, path: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        page = self.call("GET", f"{path}?limit=200")
        while True:
            items.extend(page["results"])
            if not page.get("next"):
                return items
            page = self.call("GET", page["next"].removeprefix(self.base_url))

    # --- live -------------------------------------------------------------------------

    def events(self) -> EventStream:
        """The user's live events and prices; authenticated by the access token of now."""
        ws_url = self.base_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        assert self.access, "log in first"
        return EventStream(f"{ws_url}/ws/v1/events/", self.access)


@dataclass
class EventStream:
    """``/ws/v1/events/`` read on a thread: every message lands in ``messages`` (a queue)
    and in ``received`` (all of them, in order)."""

    url: str
    access: str
    messages: queue.Queue[dict[str, Any]] = field(default_factory=queue.Queue)
    received: list[dict[str, Any]] = field(default_factory=list)
    error: Exception | None = None

    def __post_init__(self) -> None:
        self._socket = websocket.create_connection(
            self.url, header=[f"Authorization: Bearer {self.access}"], timeout=10
        )
        self._socket.settimeout(1)
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._read, name="app-events", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._closing.is_set():
            try:
                raw = self._socket.recv()
            except websocket.WebSocketTimeoutException:
                continue
            except (websocket.WebSocketException, OSError) as error:
                if not self._closing.is_set():
                    self.error = error  # what ended the stream early, for whoever wonders why
                return
            if not raw:
                return
            message = json.loads(raw)
            self.received.append(message)
            self.messages.put(message)

    def events(self) -> list[dict[str, Any]]:
        return [m["event"] for m in list(self.received) if m.get("type") == "event"]

    def prices(self, instrument: str) -> list[dict[str, Any]]:
        return [m for m in list(self.received) if m.get("type") == "price" and m.get("instrument") == instrument]

    def close(self) -> None:
        self._closing.set()
        try:
            self._socket.close()
        finally:
            self._thread.join(timeout=5)
