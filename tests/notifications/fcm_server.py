"""A real HTTP server on loopback that answers as Google does for FCM HTTP v1: an OAuth2 token
endpoint that checks the service account's signed JWT (RS256) and issues access tokens, and
``messages:send`` that checks the bearer token and answers each registration token from a
script (then 200), as FCM answers: 404 UNREGISTERED, 400 INVALID_ARGUMENT, 429 with Retry-After."""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

PROJECT = "algotrader-test"
SCOPE = "https://www.googleapis.com/auth/firebase.messaging"


def _fcm_error(status: int, code: str, message: str, *extra: dict[str, Any]) -> dict[str, Any]:
    details = [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}, *extra]
    names = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 503: "UNAVAILABLE"}
    return {"error": {"code": status, "message": message, "status": names.get(status, "UNKNOWN"), "details": details}}


UNREGISTERED = (404, _fcm_error(404, "UNREGISTERED", "Requested entity was not found."))
INVALID_TOKEN = (
    400,
    _fcm_error(
        400,
        "INVALID_ARGUMENT",
        "The registration token is not a valid FCM registration token",
        {
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            "fieldViolations": [{"field": "message.token", "description": "Invalid registration token"}],
        },
    ),
)
INVALID_MESSAGE = (
    400,
    _fcm_error(
        400,
        "INVALID_ARGUMENT",
        "Invalid value at 'message.data'",
        {"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [{"field": "message.data"}]},
    ),
)
QUOTA_EXCEEDED = (429, _fcm_error(429, "QUOTA_EXCEEDED", "Quota exceeded for sending messages."))
UNAVAILABLE = (503, _fcm_error(503, "UNAVAILABLE", "The service is currently unavailable."))


def _unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


@dataclass
class FcmReceiver:
    public_key: rsa.RSAPublicKey
    client_email: str
    root: str = ""
    # Scripted answers per registration token, taken in turn (then 200).
    answers: dict[str, list[tuple[int, dict[str, Any]]]] = field(default_factory=dict)
    delivered: list[dict[str, Any]] = field(default_factory=list)  # messages answered 200
    attempts: list[str] = field(default_factory=list)  # the registration token of every send
    token_grants: int = 0
    issued: set[str] = field(default_factory=set)
    refused_assertions: int = 0

    @property
    def token_uri(self) -> str:
        return f"{self.root}/token"

    def revoke_access_tokens(self) -> None:
        self.issued.clear()

    def assertion_valid(self, assertion: str) -> bool:
        try:
            header_b64, claims_b64, signature_b64 = assertion.split(".")
            header, claims = json.loads(_unb64(header_b64)), json.loads(_unb64(claims_b64))
            self.public_key.verify(
                _unb64(signature_b64), f"{header_b64}.{claims_b64}".encode(), padding.PKCS1v15(), hashes.SHA256()
            )
        except (ValueError, InvalidSignature):
            return False
        now = time.time()
        return bool(
            header.get("alg") == "RS256"
            and claims.get("iss") == self.client_email
            and claims.get("aud") == self.token_uri
            and claims.get("scope") == SCOPE
            and claims.get("iat", 0) - 60 <= now < claims.get("exp", 0)
        )


@contextmanager
def fcm_receiver(public_key: rsa.RSAPublicKey, client_email: str) -> Iterator[FcmReceiver]:
    receiver = FcmReceiver(public_key=public_key, client_email=client_email)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path == "/token":
                self._grant(parse_qs(raw.decode()))
            elif self.path == f"/v1/projects/{PROJECT}/messages:send":
                self._send(json.loads(raw))
            else:
                self._answer(404, {"error": {"code": 404, "message": "no such path", "status": "NOT_FOUND"}})

        def _grant(self, form: dict[str, list[str]]) -> None:
            grant = form.get("grant_type", [""])[0]
            assertion = form.get("assertion", [""])[0]
            with lock:
                if grant != "urn:ietf:params:oauth:grant-type:jwt-bearer" or not receiver.assertion_valid(assertion):
                    receiver.refused_assertions += 1
                    self._answer(400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
                    return
                receiver.token_grants += 1
                token = f"ya29.test-{secrets.token_hex(12)}"
                receiver.issued.add(token)
            self._answer(200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"})

        def _send(self, body: dict[str, Any]) -> None:
            bearer = self.headers.get("Authorization", "").removeprefix("Bearer ")
            with lock:
                if bearer not in receiver.issued:
                    self._answer(401, {"error": {"code": 401, "message": "invalid auth", "status": "UNAUTHENTICATED"}})
                    return
                token = body["message"]["token"]
                receiver.attempts.append(token)
                script = receiver.answers.get(token) or []
                status, answer = script.pop(0) if script else (200, {})
                if status == 200:
                    receiver.delivered.append(body["message"])
                    answer = {"name": f"projects/{PROJECT}/messages/0:{len(receiver.delivered)}"}
            self._answer(status, answer, {"Retry-After": "1"} if status == 429 else None)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.root = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
