from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = "Notifications"

    def ready(self) -> None:
        # Django's place for registrations, where models may be imported: an exit or a user's
        # alert records its notification in its own transaction, in every process.
        from monitoring.services import event_followers_register
        from notifications import checks, services

        event_followers_register(events=services.FOLLOWED_EVENTS, follower=services.notifications_from_events)
        checks.register()
