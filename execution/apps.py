from django.apps import AppConfig


class ExecutionConfig(AppConfig):
    name = "execution"
    verbose_name = "Execution"

    def ready(self) -> None:
        # Django's documented place to connect receivers: the app registry is ready here.
        from execution.recovery import watch  # noqa: F401 - connects the start recoveries
        from execution.selectors.positions import open_positions
        from market.live_pnl import open_positions_source_register

        # The app's socket prices the user's open positions with each price push.
        open_positions_source_register(name="execution", source=open_positions)
