"""Beat's database scheduler, reading the schedule in one snapshot.

django-celery-beat loads the enabled tasks, then their schedules in a second query
(``prefetch_related``). A slot deleted between the two (a STOP releasing it, the sweeper
collecting fired ones) leaves a task without a schedule, and beat dies on it: no BUY or SELL
fires again until it is restarted. One joined query cannot see half a deletion."""

from typing import Any

from django_celery_beat.schedulers import DatabaseScheduler

SCHEDULES = ("interval", "crontab", "solar", "clocked")


class SnapshotDatabaseScheduler(DatabaseScheduler):
    """DatabaseScheduler whose enabled tasks come with their schedules in the same query."""

    def enabled_models_qs(self) -> Any:
        return super().enabled_models_qs().prefetch_related(None).select_related(*SCHEDULES)
