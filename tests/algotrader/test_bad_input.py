"""No bad input gets a 5xx, and every refusal comes in the one JSON error shape: nesting and
size are bounded before parsing, integer query parameters are bounded, credentials validated."""

import json

import pytest
from django.test import Client, override_settings

from algotrader.api.parsers import json_depth_exceeds

pytestmark = pytest.mark.django_db

LOGIN = "/api/v1/auth/login/"


def test_json_nested_a_thousand_deep_is_a_400_before_it_is_parsed(api_client):
    body = "[" * 1000 + "]" * 1000

    response = api_client.post(LOGIN, body, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_request"


def test_brackets_inside_strings_do_not_count_as_nesting():
    assert not json_depth_exceeds(json.dumps({"password": "[[[[[[[[{{{{{{{{" * 10}).encode(), 32)
    assert json_depth_exceeds(b'{"a": "\\"", "b": ' + b"[" * 40 + b"]" * 40 + b"}", 32)


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000)
def test_a_body_over_the_upload_limit_is_a_json_400(api_client):
    response = api_client.post(LOGIN, {"email": "a@example.com", "password": "x" * 2000}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("limit=99999999999999999999999", "limit"),
        ("offset=99999999999999999999999", "offset"),
        ("limit=0", "limit"),
        ("limit=-5", "limit"),
        ("offset=abc", "offset"),
    ],
)
def test_an_out_of_bounds_page_parameter_is_a_400_naming_it(auth_client, query, parameter):
    response = auth_client.get(f"/api/v1/strategies/?{query}")

    assert response.status_code == 400
    assert parameter in response.json()["error"]["fields"]


def test_a_page_within_bounds_is_served(auth_client):
    response = auth_client.get("/api/v1/strategies/?limit=200&offset=1000000")

    assert response.status_code == 200
    assert response.json()["results"] == []


@pytest.mark.parametrize("api_key", ["kéy\u00e9\u4e2d", "key\r\nX-Injected: 1", "key with space"])
def test_a_credential_that_no_broker_could_accept_is_a_400_per_field(auth_client, api_key):
    response = auth_client.post(
        "/api/v1/broker-accounts/",
        {"kind": "kite", "label": "main", "api_key": api_key, "api_secret": "secret", "access_token": "token"},
        format="json",
    )

    assert response.status_code == 400
    assert "api_key" in response.json()["error"]["fields"]


def test_a_host_not_allowed_gets_the_json_error_shape():
    response = Client(HTTP_HOST="evil.example.com").get("/api/v1/auth/me/")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"
