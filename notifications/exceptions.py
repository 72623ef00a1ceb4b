"""The notifications API's errors: another user's notification or device is not found."""

from algotrader.exceptions import NotFound


class NotificationNotFound(NotFound):
    message = "Notification not found."


class DeviceNotFound(NotFound):
    message = "Device not found."
