"""The notifications and devices API: the user's feed newest first, filtered and paginated,
marked read one by one or all at once; phones registered idempotently and removed; another
user's notification or device answers 404, a bad filter or body 400 in the one error shape."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from notifications.models import Device, Notification
from tests.factories import DeviceFactory, NotificationFactory, UserFactory

pytestmark = pytest.mark.django_db

TOKEN = "dGVzdC1waG9uZQ:APA91bHun4MxP5egoKMwt2KZFBaFUH-1RYqx"


def client_of(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    return client


def test_the_feed_is_the_users_own_newest_first(auth_client, user):
    older, newer = NotificationFactory.create_batch(2, user=user)
    Notification.objects.filter(pk=older.pk).update(created_at=timezone.now() - timedelta(minutes=1))
    NotificationFactory.create()  # another user's

    response = auth_client.get("/api/v1/notifications/")

    assert response.status_code == 200
    assert response.json()["count"] == 2
    assert [n["id"] for n in response.json()["results"]] == [newer.pk, older.pk]
    assert set(response.json()["results"][0]) == {
        "id",
        "kind",
        "title",
        "body",
        "strategy",
        "order",
        "created_at",
        "read_at",
    }


def test_the_feed_filters_unread_read_and_kind(auth_client, user):
    unread = NotificationFactory.create(user=user, kind="exit")
    read = NotificationFactory.create(user=user, read_at=timezone.now())

    def ids(query: str) -> list[int]:
        return [n["id"] for n in auth_client.get(f"/api/v1/notifications/?{query}").json()["results"]]

    assert ids("unread=true") == [unread.pk]
    assert ids("unread=false") == [read.pk]
    assert ids("kind=exit") == [unread.pk]
    assert ids("limit=1&offset=1") == [unread.pk]


def test_a_bad_filter_is_a_400_naming_it(auth_client):
    response = auth_client.get("/api/v1/notifications/?unread=maybe&kind=gossip")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    assert set(response.json()["error"]["fields"]) == {"unread", "kind"}


def test_marking_read_keeps_the_first_read_time(auth_client, user):
    notification = NotificationFactory.create(user=user)

    first = auth_client.post(f"/api/v1/notifications/{notification.pk}/read/")
    again = auth_client.post(f"/api/v1/notifications/{notification.pk}/read/")

    assert first.status_code == again.status_code == 200
    assert first.json()["read_at"] is not None
    assert again.json()["read_at"] == first.json()["read_at"]


def test_another_users_notification_is_404_and_stays_unread(auth_client):
    theirs = NotificationFactory.create()

    response = auth_client.post(f"/api/v1/notifications/{theirs.pk}/read/")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "notification_not_found"
    theirs.refresh_from_db()
    assert theirs.read_at is None


def test_mark_all_read_marks_only_the_users_unread_up_to_the_id_given(auth_client, user):
    shown, arrived_since = NotificationFactory.create_batch(2, user=user)
    theirs = NotificationFactory.create()

    partial = auth_client.post("/api/v1/notifications/read-all/", {"up_to_id": shown.pk}, format="json")
    rest = auth_client.post("/api/v1/notifications/read-all/")

    assert partial.json() == {"marked": 1}
    assert rest.json() == {"marked": 1}
    assert Notification.objects.filter(user=user, read_at__isnull=True).count() == 0
    assert Notification.objects.get(pk=theirs.pk).read_at is None
    assert arrived_since.pk > shown.pk


def test_mark_all_read_refuses_a_bad_id(auth_client):
    response = auth_client.post("/api/v1/notifications/read-all/", {"up_to_id": "last"}, format="json")

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["up_to_id"]


def test_registering_a_phone_is_idempotent(auth_client, user):
    first = auth_client.post("/api/v1/devices/", {"token": TOKEN}, format="json")
    again = auth_client.post("/api/v1/devices/", {"token": TOKEN}, format="json")

    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert "token" not in first.json()
    assert Device.objects.get().user == user


def test_a_token_registered_by_another_user_moves_to_them(auth_client, user):
    previous = DeviceFactory.create(token=TOKEN)

    response = auth_client.post("/api/v1/devices/", {"token": TOKEN}, format="json")
    old_owner_delete = client_of(previous.user).delete(f"/api/v1/devices/{previous.pk}/")

    assert response.status_code == 200 and response.json()["id"] == previous.pk
    assert Device.objects.get().user == user
    assert old_owner_delete.status_code == 404


def test_a_bad_token_is_a_400(auth_client):
    response = auth_client.post("/api/v1/devices/", {"token": "no spaces allowed"}, format="json")
    missing = auth_client.post("/api/v1/devices/", {}, format="json")

    assert response.status_code == missing.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["token"]


def test_removing_a_phone_and_another_users_is_404(auth_client, user):
    mine = DeviceFactory.create(user=user)
    theirs = DeviceFactory.create()

    removed = auth_client.delete(f"/api/v1/devices/{mine.pk}/")
    again = auth_client.delete(f"/api/v1/devices/{mine.pk}/")
    not_mine = auth_client.delete(f"/api/v1/devices/{theirs.pk}/")

    assert (removed.status_code, again.status_code, not_mine.status_code) == (204, 404, 404)
    assert not_mine.json()["error"]["code"] == "device_not_found"
    assert list(Device.objects.all()) == [theirs]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/notifications/"),
        ("post", "/api/v1/notifications/1/read/"),
        ("post", "/api/v1/notifications/read-all/"),
        ("post", "/api/v1/devices/"),
        ("delete", "/api/v1/devices/1/"),
    ],
)
def test_every_operation_needs_a_login(api_client, method, path):
    response = getattr(api_client, method)(path)

    assert response.status_code == 401


def test_an_id_beyond_the_database_range_is_a_404(auth_client):
    huge = 2**70

    assert auth_client.post(f"/api/v1/notifications/{huge}/read/").status_code == 404
    assert auth_client.delete(f"/api/v1/devices/{huge}/").status_code == 404
    unknown = UserFactory.create()
    assert client_of(unknown).get("/api/v1/notifications/").json()["count"] == 0


def test_a_token_that_is_not_a_string_is_a_400(auth_client):
    response = auth_client.post("/api/v1/devices/", {"token": 12345}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"token": ["Must be a string."]}
