"""Re-encrypts every stored secret under the first key of FIELD_ENCRYPTION_KEYS.

Rotation: put the new key first (``FIELD_ENCRYPTION_KEYS=new,old``) on every
process, run this command, then remove the old key.
"""

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from brokers.fields import DecryptionError
from brokers.services import encrypted_fields_rotate


class Command(BaseCommand):
    help = "Re-encrypt every encrypted field value with the first key of FIELD_ENCRYPTION_KEYS (all or nothing)."

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            rotated = encrypted_fields_rotate()
        except DecryptionError as error:
            raise CommandError(f"{error} Nothing was changed.") from error
        self.stdout.write(self.style.SUCCESS(f"Re-encrypted {rotated} row(s) with the first key."))
