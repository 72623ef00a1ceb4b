"""The order book, positions and P&L, under the API's root (each route names its resource)."""

from django.urls import path

from execution import api

urlpatterns = [
    path("orders/", api.OrderListApi.as_view(), name="order-list"),
    path("orders/<int:order_id>/", api.OrderDetailApi.as_view(), name="order-detail"),
    path("positions/", api.PositionListApi.as_view(), name="position-list"),
    path("positions/<int:strategy_id>/", api.PositionDetailApi.as_view(), name="position-detail"),
    path("pnl/day/", api.DaySummaryApi.as_view(), name="pnl-day"),
]
