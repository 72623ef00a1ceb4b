"""The order book, positions and P&L, and the account's deletion (it touches every app, so it is
execution's, under the auth routes), at the API's root: each route names its resource."""

from django.urls import path

from execution import api
from execution.account_api import AccountDeleteApi
from execution.risk_api import AccountRiskLimitsApi, RiskLimitsApi

urlpatterns = [
    path("orders/", api.OrderListApi.as_view(), name="order-list"),
    path("orders/<int:order_id>/", api.OrderDetailApi.as_view(), name="order-detail"),
    path("positions/", api.PositionListApi.as_view(), name="position-list"),
    path("positions/<int:strategy_id>/", api.PositionDetailApi.as_view(), name="position-detail"),
    path("pnl/day/", api.DaySummaryApi.as_view(), name="pnl-day"),
    path("risk-limits/", RiskLimitsApi.as_view(), name="risk-limits"),
    # Under the broker account's path, though brokers' own routes are included before these.
    path("broker-accounts/<int:account_id>/risk-limits/", AccountRiskLimitsApi.as_view(), name="account-risk-limits"),
    path("auth/account/delete/", AccountDeleteApi.as_view(), name="auth-account-delete"),
]
