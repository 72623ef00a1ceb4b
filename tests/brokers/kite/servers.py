"""Real local sockets for what the Kite simulator cannot produce: a port nobody listens
on, a server that accepts and never answers, and an HTTP server that answers every
request with one canned Kite response (status, body) and records what it received."""

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def closed_port() -> int:
    """A loopback port that was free a moment ago: connecting to it is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def silent_server() -> Iterator[str]:
    """Accepts connections, reads what is sent, never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            accepted.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=2)
        for conn in accepted:
            conn.close()
        listener.close()


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class CannedKite:
    root: str
    received: list[Received] = field(default_factory=list)
    status: int = 200
    body: bytes = b'{"status": "success", "data": {}}'
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)  # more response headers (Set-Cookie...)

    def answer(self, status: int, body: object, content_type: str = "application/json") -> None:
        self.status = status
        self.body = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.content_type = content_type

    def error(self, status: int, error_type: str, message: str = "Broker says no.") -> None:
        self.answer(status, {"status": "error", "message": message, "data": None, "error_type": error_type})


@contextmanager
def canned_kite() -> Iterator[CannedKite]:
    canned = CannedKite(root="")

    class Handler(BaseHTTPRequestHandler):
        def _reply(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            canned.received.append(
                Received(self.command, self.path, dict(self.headers.items()), self.rfile.read(length))
            )
            self.send_response(canned.status)
            self.send_header("Content-Type", canned.content_type)
            self.send_header("Content-Length", str(len(canned.body)))
            for name, value in canned.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(canned.body)

        do_GET = do_POST = do_PUT = do_DELETE = _reply

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    canned.root = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield canned
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=2)


class TickerServer:
    """A bare Kite-style ticker endpoint on loopback: records each connection's URL,
    headers and text messages, pushes frames to every client, and can cut them all."""

    def __init__(self, port: int = 0) -> None:
        from websockets.sync.server import serve

        self.requests: list[tuple[str, dict[str, str]]] = []
        self.messages: list[dict[str, object]] = []
        self._connections: list[Any] = []
        self._lock = threading.Lock()
        self._server = serve(self._handle, "127.0.0.1", port, compression=None)
        self.root = f"ws://127.0.0.1:{self._server.socket.getsockname()[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _handle(self, connection: Any) -> None:
        with self._lock:
            self.requests.append((connection.request.path, dict(connection.request.headers.raw_items())))
            self._connections.append(connection)
        try:
            for message in connection:
                if isinstance(message, str):
                    with self._lock:
                        self.messages.append(json.loads(message))
        except Exception:  # noqa: S110 - a dropped client is what several tests do on purpose
            pass
        finally:
            with self._lock:
                if connection in self._connections:
                    self._connections.remove(connection)

    @property
    def client_count(self) -> int:
        return len(self._connections)

    def send(self, message: bytes | str) -> None:
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            connection.send(message)

    def drop_all(self) -> None:
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            # Abrupt, like a network failure: no closing handshake.
            connection.socket.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)


@contextmanager
def ticker_server(port: int = 0) -> Iterator[TickerServer]:
    server = TickerServer(port)
    try:
        yield server
    finally:
        server.close()
