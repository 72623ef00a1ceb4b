"""JWT authentication for WebSocket connections: the access token comes in the ``Authorization:
Bearer`` header or, from browsers that cannot set headers, as the subprotocol pair ``["bearer",
token]``; never in the query string, as URLs end up in access logs. The token's expiry and login
(its refresh family) go into the scope: the socket lives no longer than they do."""

from typing import Any

from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from channels.security.websocket import OriginValidator
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed, InvalidToken, TokenError

BEARER_SUBPROTOCOL = "bearer"
FAMILY_CLAIM = "family"


def _token_from_scope(scope: dict[str, Any]) -> tuple[str | None, str | None]:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            kind, _, token = value.decode("latin-1").partition(" ")
            if kind.lower() == "bearer" and token:
                return token.strip(), None
    protocols = scope.get("subprotocols") or []
    if len(protocols) >= 2 and protocols[0] == BEARER_SUBPROTOCOL:
        return protocols[1], BEARER_SUBPROTOCOL
    return None, None


def socket_session(token: str) -> tuple[Any, dict[str, Any]]:
    """The user an access token names (AnonymousUser if it is invalid, expired or the user
    inactive), and what the socket keeps of it: its expiry (epoch seconds) and its login."""
    auth = JWTAuthentication()
    try:
        validated = auth.get_validated_token(token.encode())
        user = auth.get_user(validated)
    except (InvalidToken, TokenError, AuthenticationFailed):
        return AnonymousUser(), {}
    return user, {"token_exp": float(validated["exp"]), "token_family": validated.get(FAMILY_CLAIM)}


class JWTAuthMiddleware(BaseMiddleware):
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        token, subprotocol = _token_from_scope(scope)
        user, session = await database_sync_to_async(socket_session)(token) if token else (AnonymousUser(), {})
        scope = dict(scope, user=user, **session)
        if subprotocol:
            scope["accepted_subprotocol"] = subprotocol
        return await super().__call__(scope, receive, send)


class BrowserOriginValidator(OriginValidator):
    """Browsers always send ``Origin``: theirs must be an allowed host (no cross-site socket
    riding a user's credentials). A native app sends none, and its token alone decides."""

    def __init__(self, application: Any) -> None:
        allowed = list(settings.ALLOWED_HOSTS)
        if settings.DEBUG and not allowed:
            allowed = ["localhost", "127.0.0.1", "[::1]"]  # as Channels' AllowedHostsOriginValidator
        super().__init__(application, allowed)

    def valid_origin(self, parsed_origin: Any) -> bool:
        if parsed_origin is None:
            return True
        return bool(super().valid_origin(parsed_origin))
