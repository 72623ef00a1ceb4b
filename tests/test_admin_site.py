"""Every page registered in admin opens for an operator: each list, its add page where
adding is allowed, and a search, so that no admin (of any app) ships broken."""

from typing import Any

import pytest
from django.contrib import admin
from django.test import Client

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def registered() -> dict[str, admin.ModelAdmin[Any]]:
    return {f"{model._meta.app_label}/{model._meta.model_name}": m for model, m in admin.site._registry.items()}


@pytest.mark.parametrize("page", sorted(registered()))
def test_every_admin_list_opens_with_a_search_and_its_add_page_if_any(page):
    client = Client()
    client.force_login(UserFactory.create(is_staff=True, is_superuser=True))
    model_admin = registered()[page]

    listed = client.get(f"/admin/{page}/")
    searched = client.get(f"/admin/{page}/", {"q": "INFY"})
    added = client.get(f"/admin/{page}/add/")

    assert listed.status_code == searched.status_code == 200
    assert added.status_code == (200 if model_admin.has_add_permission(listed.wsgi_request) else 403)


def test_the_operators_pages_are_all_registered():
    assert {
        "users/user",
        "brokers/brokeraccount",
        "brokers/paperorder",
        "brokers/instrument",
        "strategies/strategy",
        "strategies/marketsession",
        "strategies/marketholiday",
        "strategies/runreadiness",
        "execution/order",
        "execution/entryhalt",
        "execution/risklimits",
        "monitoring/eventlog",
        "monitoring/alert",
    } <= set(registered())
