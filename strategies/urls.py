from django.urls import path

from strategies import api

urlpatterns = [
    path("", api.StrategyListApi.as_view(), name="strategy-list"),
    path("<int:strategy_id>/", api.StrategyDetailApi.as_view(), name="strategy-detail"),
    path("<int:strategy_id>/start/", api.StrategyStartApi.as_view(), name="strategy-start"),
    path("<int:strategy_id>/stop/", api.StrategyStopApi.as_view(), name="strategy-stop"),
    path("<int:strategy_id>/events/", api.StrategyEventsApi.as_view(), name="strategy-events"),
    path("<int:strategy_id>/readiness/", api.StrategyReadinessApi.as_view(), name="strategy-readiness"),
]
