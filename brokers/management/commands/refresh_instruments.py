"""Refreshes the instrument list the symbol search reads, at once: from the broker's dump as the
morning's task does (INSTRUMENTS_BROKER), or from a dump file an operator downloaded."""

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from brokers.exceptions import BrokerError
from brokers.instruments import instruments_from_csv
from brokers.services import instruments_refresh, instruments_store_all


class Command(BaseCommand):
    help = "Refresh the instrument list from the broker's dump (INSTRUMENTS_BROKER), or from --file."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--exchange",
            action="append",
            dest="exchanges",
            help="An exchange to refresh (repeatable); default: INSTRUMENTS_EXCHANGES.",
        )
        parser.add_argument("--file", type=Path, help="A dump in Kite's instruments CSV, instead of the broker.")

    def handle(self, *args: Any, **options: Any) -> None:
        exchanges = [e.upper() for e in options["exchanges"] or settings.INSTRUMENTS_EXCHANGES]
        try:
            if options["file"] is not None:
                instruments = instruments_from_csv(options["file"].read_text(encoding="utf-8-sig"))
                kept = instruments_store_all(instruments=instruments, exchanges=exchanges)
            else:
                kept = instruments_refresh(exchanges=exchanges)
        except (OSError, ValueError, ArithmeticError, KeyError, BrokerError) as error:
            raise CommandError(f"The instrument list was not refreshed: {error}") from error
        for exchange, rows in kept.items():
            if rows:
                self.stdout.write(self.style.SUCCESS(f"{exchange}: {rows} instrument(s)."))
            else:
                self.stdout.write(self.style.WARNING(f"{exchange}: the dump listed none; the list was kept as it was."))
