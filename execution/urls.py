from django.urls import path

from execution import api

order_urls = [
    path("", api.OrderListApi.as_view(), name="order-list"),
    path("<int:order_id>/", api.OrderDetailApi.as_view(), name="order-detail"),
]

position_urls = [
    path("", api.PositionListApi.as_view(), name="position-list"),
    path("<int:strategy_id>/", api.PositionDetailApi.as_view(), name="position-detail"),
]

pnl_urls = [
    path("day/", api.DaySummaryApi.as_view(), name="pnl-day"),
]
