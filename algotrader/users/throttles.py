"""Rate limits on the auth endpoints, per client address and per account (the email in the
body, or the logged-in user), so that neither one address nor many addresses against one
account can hammer login, register, a password reset or a password check."""

import hashlib
from typing import Any

from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle


class AuthPerIPThrottle(SimpleRateThrottle):
    scope = "auth_ip"

    def get_cache_key(self, request: Request, view: Any) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class AuthPerAccountThrottle(SimpleRateThrottle):
    scope = "auth_account"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        # A body that does not parse raises ParseError here, which DRF answers with 400.
        data = request.data
        email = data.get("email") if isinstance(data, dict) else None
        if not isinstance(email, str) or not email.strip():
            return None
        ident = hashlib.sha256(email.strip().lower().encode()).hexdigest()
        return self.cache_format % {"scope": self.scope, "ident": ident}


class AuthTokenPerIPThrottle(AuthPerIPThrottle):
    """Refresh and logout, per client address: each is a database write and a token check."""

    scope = "auth_token"


class AuthPerUserThrottle(SimpleRateThrottle):
    """The password change and the account deletion check a password: per user, at the
    per-account rate, so a stolen access token cannot guess the password quickly."""

    scope = "auth_account"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if not request.user or not request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": f"user:{request.user.pk}"}
