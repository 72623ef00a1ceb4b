from django.urls import path

from notifications import api

notification_urls = [
    path("", api.NotificationListApi.as_view(), name="notification-list"),
    path("read-all/", api.NotificationReadAllApi.as_view(), name="notification-read-all"),
    path("<int:notification_id>/read/", api.NotificationReadApi.as_view(), name="notification-read"),
]

device_urls = [
    path("", api.DeviceListApi.as_view(), name="device-list"),
    path("<int:device_id>/", api.DeviceDetailApi.as_view(), name="device-detail"),
]
