from django.apps import AppConfig


class ExecutionConfig(AppConfig):
    name = "execution"
    verbose_name = "Execution"

    def ready(self) -> None:
        # Django's documented place to connect receivers: the app registry is ready here.
        from monitoring import recovery  # noqa: F401 - connects the worker-start recovery
