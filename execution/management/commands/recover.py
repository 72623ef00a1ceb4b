"""``manage.py recover``: rebuild Redis from the database, reconcile live orders by tag,
resync beat's slots and send lost order tasks again (X1, X4). Safe to run at any time and
any number of times; a second run started meanwhile waits for the first, then repeats it."""

import json
from dataclasses import asdict
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from execution.recovery.system import Trigger, system_recover


class Command(BaseCommand):
    help = "Rebuild the runtime state in Redis from the database and reconcile live orders (X1, X4)."

    def handle(self, *args: Any, **options: Any) -> None:
        report = system_recover(trigger=Trigger.COMMAND, wait=True)
        if report is None:
            raise CommandError("another recovery held the lock for too long; try again")
        self.stdout.write(json.dumps(asdict(report)))
