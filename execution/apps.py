from django.apps import AppConfig


class ExecutionConfig(AppConfig):
    name = "execution"
    verbose_name = "Execution"

    def ready(self) -> None:
        # Django's documented place to connect receivers: the app registry is ready here.
        from execution.recovery import watch  # noqa: F401 - connects the start recoveries
