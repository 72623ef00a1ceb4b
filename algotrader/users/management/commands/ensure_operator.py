"""``manage.py ensure_operator``: `make run`'s one-time operator account (see
``algotrader.users.operators``), from OPERATOR_EMAIL / OPERATOR_PASSWORD if set."""

import os
from typing import Any

from django.core.management.base import BaseCommand

from algotrader.users.operators import operator_ensure


class Command(BaseCommand):
    help = "Create the operator (superuser) account once; print its login if it was just created."

    def handle(self, *args: Any, **options: Any) -> None:
        account = operator_ensure(
            email=os.environ.get("OPERATOR_EMAIL") or None, password=os.environ.get("OPERATOR_PASSWORD") or None
        )
        if not account.created:
            self.stdout.write(
                f"Operator account: {account.email} (exists; reset its password with "
                f"`.venv/bin/honcho run python manage.py changepassword {account.email}`)"
            )
        elif account.generated_password:
            self.stdout.write(
                self.style.WARNING(
                    f"Created the operator account {account.email} with password {account.generated_password}\n"
                    "  It is shown by this run only and stored nowhere (the database keeps its hash): note it now."
                )
            )
        else:
            self.stdout.write(f"Created the operator account {account.email} (password from OPERATOR_PASSWORD)")
