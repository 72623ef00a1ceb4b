"""factory_boy factories for the models tests need."""

from typing import Any

import factory

from algotrader.users.models import User


class UserFactory(factory.django.DjangoModelFactory[User]):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"trader{n}@example.com")

    @factory.post_generation
    def password(obj: User, create: bool, extracted: str | None, **kwargs: Any) -> None:
        obj.set_password(extracted or "correct horse battery staple")
        if create:
            obj.save(update_fields=["password"])


# Appended below the original imports so that concurrent additions to this module never collide.
from brokers.models import BrokerAccount  # noqa: E402


def _session_expiry() -> Any:
    from datetime import timedelta

    from django.utils import timezone

    return timezone.now() + timedelta(hours=8)


class BrokerAccountFactory(factory.django.DjangoModelFactory[BrokerAccount]):
    """An active paper account by default; ``kite=True`` gives a Kite account with a live session."""

    class Meta:
        model = BrokerAccount

    class Params:
        kite = factory.Trait(
            kind="kite",
            api_key=factory.Sequence(lambda n: f"kiteapikey{n:06d}"),
            api_secret=factory.Sequence(lambda n: f"kiteapisecret{n:06d}xyz"),
            access_token=factory.Sequence(lambda n: f"kiteaccesstoken{n:06d}abc"),
            broker_user_id=factory.Sequence(lambda n: f"AB{n:04d}"),
            token_expires_at=factory.LazyFunction(_session_expiry),
        )

    owner = factory.SubFactory(UserFactory)
    kind = "paper"
    label = factory.Sequence(lambda n: f"account {n}")
    status = "active"
    broker_user_id = factory.LazyAttribute(lambda account: f"PAPER{account.owner.pk}")


# Appended below the original imports so that concurrent additions to this module never collide.
from notifications.models import Device, Notification  # noqa: E402


class NotificationFactory(factory.django.DjangoModelFactory[Notification]):
    class Meta:
        model = Notification

    user = factory.SubFactory(UserFactory)
    kind = Notification.Kind.ALERT
    title = factory.Sequence(lambda n: f"Alert {n}")
    body = "Something needs your attention."


class DeviceFactory(factory.django.DjangoModelFactory[Device]):
    class Meta:
        model = Device

    user = factory.SubFactory(UserFactory)
    token = factory.Sequence(lambda n: f"fcm-token-{n:06d}:APA91b{'x' * 40}")


from decimal import Decimal  # noqa: E402

from django.utils import timezone  # noqa: E402

from brokers.models import Instrument  # noqa: E402


class InstrumentFactory(factory.django.DjangoModelFactory[Instrument]):
    """A BSE equity of the instrument list by default: the migration seeds NSE's shipped list,
    so tests that rank their own rows search BSE."""

    class Meta:
        model = Instrument

    instrument_token = factory.Sequence(lambda n: 900_000_000 + n * 256 + 1)
    exchange_token = factory.LazyAttribute(lambda i: i.instrument_token // 256)
    exchange = "BSE"
    symbol = factory.Sequence(lambda n: f"SYM{n}")
    name = factory.LazyAttribute(lambda i: f"{i.symbol} LIMITED")
    segment = "BSE"
    instrument_type = "EQ"
    tick_size = Decimal("0.05")
    lot_size = 1
    last_price = None
    refreshed_at = factory.LazyFunction(timezone.now)
