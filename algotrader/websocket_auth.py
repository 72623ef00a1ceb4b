"""JWT authentication for WebSocket connections: the access token comes in the ``Authorization:
Bearer`` header or, from browsers that cannot set headers, as the subprotocol pair ``["bearer",
token]``; never in the query string, as URLs end up in access logs."""

from typing import Any

from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from django.contrib.auth.models import AnonymousUser
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed, InvalidToken, TokenError

BEARER_SUBPROTOCOL = "bearer"


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


def _user_for(token: str) -> Any:
    auth = JWTAuthentication()
    try:
        return auth.get_user(auth.get_validated_token(token.encode()))
    except (InvalidToken, TokenError, AuthenticationFailed):
        return AnonymousUser()


class JWTAuthMiddleware(BaseMiddleware):
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        token, subprotocol = _token_from_scope(scope)
        scope = dict(scope, user=await database_sync_to_async(_user_for)(token) if token else AnonymousUser())
        if subprotocol:
            scope["accepted_subprotocol"] = subprotocol
        return await super().__call__(scope, receive, send)
