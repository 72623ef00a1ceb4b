"""The Kite simulator's HTTP transport over ``http.server``: requests in, responses out in Kite's
success and error envelopes and HTTP statuses, over keep-alive connections a fault may drop."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from brokers.kite_sim.accounts import AccountState
from brokers.kite_sim.errors import KiteError, general_error

logger = logging.getLogger(__name__)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    form: dict[str, str]
    headers: dict[str, str]
    body: bytes = b""
    args: dict[str, str] = field(default_factory=dict)
    account: AccountState | None = None

    def param(self, name: str) -> str:
        return self.form.get(name) or (self.query.get(name) or [""])[0]

    @property
    def api_key_hint(self) -> str | None:
        """The caller's api_key before it is authenticated, so faults can target one account."""
        authorization = self.headers.get("authorization", "")
        if authorization.startswith("token "):
            return authorization[len("token ") :].partition(":")[0]
        return self.param("api_key") or None


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False  # close the connection without sending anything


def success(data: Any) -> Response:
    return Response(HTTPStatus.OK, json.dumps({"status": "success", "data": data}).encode())


def failure(error: KiteError) -> Response:
    body = {"status": "error", "message": error.message, "data": None, "error_type": error.error_type}
    return Response(error.status, json.dumps(body).encode())


class _RequestHandler(BaseHTTPRequestHandler):
    # Without TCP_NODELAY each small response waits for the client's delayed ACK.
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"  # keep-alive, as the official client's requests.Session expects
    server: _HttpServer
    timeout = 30  # an idle keep-alive connection gives its thread back

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("kite_sim http: " + format, *args)

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        form: dict[str, str] = {}
        if body and "json" not in headers.get("content-type", ""):
            form = {k: v[0] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
        request = Request(method, url.path.rstrip("/") or "/", parse_qs(url.query), form, headers, body)
        try:
            response = self.server.handle(request)
        except Exception:
            logger.exception("kite_sim: unhandled error on %s %s", method, url.path)
            response = failure(general_error("Internal server error", HTTPStatus.INTERNAL_SERVER_ERROR))
        if response.drop:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(response.body)


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handle: Callable[[Request], Response]) -> None:
        self.handle = handle
        self.open_sockets: set[socket.socket] = set()
        super().__init__(address, _RequestHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        self.open_sockets.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        self.open_sockets.discard(request)
        super().shutdown_request(request)

    def close_all(self) -> None:
        for sock in list(self.open_sockets):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def make_http_server(host: str, port: int, handle: Callable[[Request], Response]) -> _HttpServer:
    return _HttpServer((host, port), handle)
