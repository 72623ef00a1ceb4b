"""Ending a user's open WebSockets when their session ends: a logout ends its login's
sockets, a deactivation every socket of the user. Sent after commit, through the channel layer."""

import logging
import uuid

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from monitoring.pusher import user_group

logger = logging.getLogger(__name__)


def user_sockets_close(*, user_id: int, family: uuid.UUID | None = None, reason: str) -> None:
    """Close the user's sockets of login ``family`` (every login when None), once committed."""

    def send() -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        message = {"type": "session.ended", "family": str(family) if family else None, "reason": reason}
        try:
            async_to_sync(layer.group_send)(user_group(user_id), message)
        except Exception:  # the session has ended in the database either way; the socket's token expires soon
            logger.warning("sockets not told their session ended", extra={"user_id": user_id}, exc_info=True)

    transaction.on_commit(send)
