"""Account tasks: mail that must not hold up (or time) the request that causes it."""

from algotrader.celery import app
from algotrader.queues import TaskName
from algotrader.users import services


@app.task(name=TaskName.ACCOUNT_EXISTS_NOTIFY, acks_late=True, expires=3600)
def account_exists_notify_task(user_id: int) -> None:
    services.account_exists_notify(user_id=user_id)


@app.task(name=TaskName.RESET_LINK_SEND, acks_late=True, expires=services.RESET_MAIL_EXPIRES_SECONDS)
def reset_link_send_task(email: str, request_id: str) -> None:
    services.password_reset_send(email=email, request_id=request_id)
