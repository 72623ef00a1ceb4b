"""Empty PROMETHEUS_MULTIPROC_DIR before the processes start (``make run`` does): samples
of a previous run's processes must not be added to this run's."""

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Delete the metric files of previous runs (prometheus_client multiprocess mode)."

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.PROMETHEUS_MULTIPROC_DIR:
            return
        removed = 0
        for path in Path(settings.PROMETHEUS_MULTIPROC_DIR).glob("*.db"):
            path.unlink(missing_ok=True)
            removed += 1
        self.stdout.write(f"metrics: {removed} file(s) of a previous run removed")
