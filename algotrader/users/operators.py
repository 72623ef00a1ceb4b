"""The operator (superuser) account `make run` creates on a fresh install, exactly once:
its credentials come from the environment or are generated, and a generated password
is shown once to whoever ran the command and stored nowhere but as Django's hash."""

import secrets
from dataclasses import dataclass

from django.db import transaction

from algotrader.users.models import User

DEFAULT_OPERATOR_EMAIL = "operator@localhost"


@dataclass(frozen=True)
class OperatorAccount:
    email: str
    created: bool
    generated_password: str | None  # set only when this call created it with a fresh password


def operator_ensure(*, email: str | None, password: str | None) -> OperatorAccount:
    """Create the operator unless any superuser exists already (a second run, or an operator
    made by hand): an existing account's password is never changed from here."""
    email = User.objects.normalize_email(email or DEFAULT_OPERATOR_EMAIL).lower()
    with transaction.atomic():
        existing = User.objects.select_for_update().filter(is_superuser=True).order_by("pk").first()
        if existing is not None:
            return OperatorAccount(email=existing.email, created=False, generated_password=None)
        generated = None if password else secrets.token_urlsafe(12)
        User.objects.create_superuser(email=email, password=password or generated)
    return OperatorAccount(email=email, created=True, generated_password=generated)
