import logging

from django.apps import AppConfig

from monitoring.logging import install_record_redaction


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = "Monitoring"

    def ready(self) -> None:
        # Every process sets Django up before it logs anything worth redacting.
        install_record_redaction()
        # Python warnings (a library's, Celery's) become log lines too: JSON, not stderr text.
        logging.captureWarnings(True)
        # Its task_failure receiver (the alert for a crashed task) in every process that runs
        # tasks, eagerly too; Django's place for receivers, where models may be imported.
        from monitoring import tasks  # noqa: F401
