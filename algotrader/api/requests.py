"""What every authenticated view asks of its request."""

from rest_framework.request import Request

from algotrader.users.models import User


def request_user(request: Request) -> User:
    """The requesting user; IsAuthenticated, the default permission, guarantees there is one."""
    user = request.user
    assert isinstance(user, User)
    return user
