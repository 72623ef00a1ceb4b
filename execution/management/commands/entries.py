"""The operator's kill switch: ``manage.py entries halt --reason "..."`` refuses every new
BUY (exits keep running); ``manage.py entries resume`` lifts it; ``--account ID`` for one
broker account (how an X5 halt is lifted); ``manage.py entries status`` lists halts."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from brokers.models import BrokerAccount
from execution.models import EntryHalt
from execution.services import safety


class Command(BaseCommand):
    help = "Halt or resume new BUYs (the kill switch); exits always run."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["halt", "resume", "status"])
        parser.add_argument("--account", type=int, help="Only this broker account (default: all accounts).")
        parser.add_argument("--reason", default="operator kill switch")

    def handle(self, *args: Any, **options: Any) -> None:
        account = None
        if options["account"] is not None:
            account = BrokerAccount.objects.filter(pk=options["account"]).first()
            if account is None:
                raise CommandError(f"no broker account {options['account']}")
        if options["action"] == "halt":
            safety.entries_halt(account=account, reason=options["reason"])
            self.stdout.write(f"new BUYs halted for {'all accounts' if account is None else account}")
        elif options["action"] == "resume":
            lifted = safety.entries_resume(account=account)
            self.stdout.write(f"{lifted} halt(s) lifted")
        for halt in EntryHalt.objects.all():
            self.stdout.write(str(halt))
