"""The API's one error format, its OpenAPI schema and docs."""

import json

import pytest
from django.core.management import call_command
from django.test import Client
from rest_framework.exceptions import ValidationError

from algotrader.api.exception_handler import flatten_errors
from algotrader.api.schema import DECLARED_ERRORS, operation_errors
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_unknown_api_url_is_a_json_404():
    response = Client().get("/api/v1/does-not-exist/")

    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "Not found.", "fields": {}}}


def test_wrong_method_is_405_in_the_error_format(auth_client):
    response = auth_client.delete("/api/v1/auth/me/")

    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_nested_validation_errors_flatten_to_dotted_fields():
    detail = ValidationError({"legs": [{"qty": ["Too big."]}, {}], "name": ["Required."]}).detail

    assert flatten_errors(detail) == {"legs.0.qty": ["Too big."], "name": ["Required."]}


def test_openapi_schema_is_valid_and_warning_free(tmp_path):
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))

    assert "/api/v1/auth/login/" in out.read_text()


def test_schema_and_docs_are_served():
    client = Client()
    schema = client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    docs = client.get("/api/v1/docs/")

    assert schema.status_code == 200
    assert schema.json()["openapi"].startswith("3.")
    assert docs.status_code == 200
    assert b"swagger-ui" in docs.content


def test_list_operations_declare_the_page_object_and_every_operation_exactly_its_errors(tmp_path):
    out = tmp_path / "schema.json"
    call_command("spectacular", "--format", "openapi-json", "--file", str(out))
    schema = json.loads(out.read_text())

    listed = schema["paths"]["/api/v1/strategies/"]["get"]["responses"]["200"]["content"]["application/json"]
    page = schema["components"]["schemas"][listed["schema"]["$ref"].rsplit("/", 1)[1]]
    assert set(page["properties"]) == {"count", "next", "previous", "results"}
    operation_ids = set()
    for path in schema["paths"].values():
        for operation in path.values():
            operation_ids.add(operation["operationId"])
            errors = {status for status in operation["responses"] if int(status) >= 400}
            assert {str(status) for status in operation_errors(operation)} <= errors, operation["operationId"]
            for status in errors:  # in the one error shape
                body = operation["responses"][status]["content"]["application/json"]["schema"]
                assert body == {"$ref": "#/components/schemas/Error"}, (operation["operationId"], status, body)
    assert set(DECLARED_ERRORS) <= operation_ids  # no stale entry for an operation that is gone
    paths = schema["paths"]
    # What an operation cannot answer is not said: a read of one's orders conflicts with nothing.
    assert set(paths["/api/v1/orders/"]["get"]["responses"]) == {"200", "400", "401", "503"}
    assert set(paths["/api/v1/auth/login/"]["post"]["responses"]) == {"200", "400", "401", "429", "503"}
    assert {"404", "409"} <= set(paths["/api/v1/strategies/{strategy_id}/start/"]["post"]["responses"])


@pytest.mark.parametrize("path", ["/api/v1/schema/", "/api/v1/docs/", "/api/v1/redoc/"])
def test_with_docs_closed_only_staff_read_the_schema_and_docs(settings, path, user):
    settings.API_DOCS_PUBLIC = False
    staff = Client()
    staff.force_login(UserFactory.create(is_staff=True))
    member = Client()
    member.force_login(user)

    assert Client().get(path).status_code in (401, 403)
    assert member.get(path).status_code == 403
    assert staff.get(path).status_code == 200


@pytest.mark.parametrize("path", ["/admin/login/", "/api/v1/docs/", "/api/v1/redoc/", "/api/v1/auth/me/"])
def test_every_page_carries_a_content_security_policy(path):
    policy = Client().get(path)["Content-Security-Policy"]

    assert "default-src 'self'" in policy
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]
    assert "frame-ancestors 'none'" in policy
