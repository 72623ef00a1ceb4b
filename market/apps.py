from django.apps import AppConfig

from market.selectors import feed_health
from monitoring.health import feed_check_register


class MarketConfig(AppConfig):
    name = "market"
    verbose_name = "Market"

    def ready(self) -> None:
        # /healthz and /readyz report the price feed through monitoring's registry.
        feed_check_register(name="market_feed", check=feed_health)
