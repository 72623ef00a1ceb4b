from django.apps import AppConfig


class StrategiesConfig(AppConfig):
    name = "strategies"
    verbose_name = "Strategies"

    def ready(self) -> None:
        from brokers.services import broker_account_in_use_register
        from strategies.selectors import strategies_trade_on

        # A broker account a strategy may still trade on is not its owner's to delete yet.
        broker_account_in_use_register(strategies_trade_on)
