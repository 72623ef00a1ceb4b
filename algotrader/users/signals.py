"""A user saved inactive (admin, a service) loses every open WebSocket at once: the socket
must not outlive the account it was opened for."""

from typing import Any

from algotrader.users.models import User
from algotrader.users.sockets import user_sockets_close


def user_deactivated_sockets_close(sender: type[User], instance: User, **kwargs: Any) -> None:
    if not instance.is_active and instance.pk is not None:
        user_sockets_close(user_id=instance.pk, reason="account_deactivated")
