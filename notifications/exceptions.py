"""The notifications API's errors: another user's notification or device is not found."""

from algotrader.exceptions import NotFound


class NotificationNotFound(NotFound):
    code = "notification_not_found"
    message = "No notification with this id."


class DeviceNotFound(NotFound):
    code = "device_not_found"
    message = "No device with this id."
