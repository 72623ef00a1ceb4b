"""The schema is the contract: a Python client generated from it (openapi-python-client, without
a warning) drives the demo's flow against a live server, and every answer, errors included,
parses into the generated models. A field the schema promises and the API leaves out, or a
status the API answers and the schema does not name, fails here."""

import importlib
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.management import call_command

pytestmark = pytest.mark.django_db(transaction=True)

IST = ZoneInfo("Asia/Kolkata")
MONDAY_10AM = datetime(2026, 11, 23, 10, 0, tzinfo=IST)
PACKAGE = "algotrader_client"
PASSWORD = "a long and unguessable passphrase"


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory, django_db_setup: None, django_db_blocker: Any) -> ModuleType:
    """The client package, generated from the schema the server serves."""
    root = tmp_path_factory.mktemp("client")
    schema, config = root / "schema.yaml", root / "config.yaml"
    with django_db_blocker.unblock():
        call_command("spectacular", "--file", str(schema), "--validate", "--fail-on-warn")
    config.write_text(f"package_name_override: {PACKAGE}\npost_hooks: []\n")
    options = ["--meta", "none", "--config", str(config)]
    generator = Path(sys.executable).parent / "openapi-python-client"
    run = subprocess.run(
        [str(generator), "generate", "--path", str(schema), "--output-path", str(root / PACKAGE), *options],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Warning" not in run.stdout + run.stderr, run.stdout + run.stderr  # every operation generated
    sys.path.insert(0, str(root))
    try:
        return importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(root))


@pytest.fixture
def monday_morning() -> Iterator[None]:
    with time_machine.travel(MONDAY_10AM, tick=True):
        yield


def op(client_package: ModuleType, tag: str, name: str) -> Any:
    return importlib.import_module(f"{client_package.__name__}.api.{tag}.{name}")


@pytest.fixture
def clients(generated: ModuleType, live_server: Any) -> Iterator[Any]:
    """Clients closed after the test: a kept-alive connection keeps the server thread's database
    session, and the test database cannot be dropped under it."""
    opened: list[Any] = []

    def client(token: str | None = None) -> Any:
        kind = generated.Client if token is None else partial(generated.AuthenticatedClient, token=token)
        opened.append(kind(base_url=live_server.url, raise_on_unexpected_status=True))
        return opened[-1]

    yield client
    for each in opened:
        each.get_httpx_client().close()


def test_a_client_generated_from_the_schema_drives_the_demo_flow(generated, clients, monday_morning):
    models = importlib.import_module(f"{PACKAGE}.models")
    anonymous = clients()
    email = "generated-client@example.com"

    registered = op(generated, "auth", "auth_register").sync_detailed(
        client=anonymous, body=models.CredentialsInputRequest(email=email, password=PASSWORD)
    )
    tokens = op(generated, "auth", "auth_login").sync(
        client=anonymous, body=models.CredentialsInputRequest(email=email, password=PASSWORD)
    )
    assert registered.status_code == 202 and isinstance(registered.parsed, models.RegisteredOutput)
    assert isinstance(tokens, models.TokenPairOutput)
    app = clients(tokens.access)

    me = op(generated, "auth", "auth_me").sync(client=app)
    account = op(generated, "broker_accounts", "broker_accounts_submit").sync(
        client=app, body=models.BrokerAccountSubmitInputRequest(kind=models.KindEnum.PAPER, label="Demo paper")
    )
    assert isinstance(me, models.UserOutput) and me.email == email
    assert isinstance(account, models.BrokerAccountOutput) and account.status == "active"

    plan = models.StrategyCreateInputRequest.from_dict(
        {
            "broker_account": account.id,
            "exchange": "NSE",
            "symbol": "INFY",
            "quantity": 1,
            "buy_at": "10:30",
            "sell_at": "15:00",
            "stop_loss_percent": "2.5",
        }
    )
    created = op(generated, "strategies", "strategies_create").sync(client=app, body=plan)
    assert isinstance(created, models.StrategyOutput)
    started = op(generated, "strategies", "strategies_start").sync(created.id, client=app)
    stopped = op(generated, "strategies", "strategies_stop").sync(
        created.id, client=app, body=models.StrategyStopInputRequest()
    )
    timeline = op(generated, "strategies", "strategies_events").sync(created.id, client=app, limit=200)
    listed = op(generated, "strategies", "strategies_list").sync(client=app)

    assert isinstance(started, models.StrategyOutput) and started.status == "RUNNING"
    assert isinstance(stopped, models.StrategyOutput) and stopped.status == "STOPPED"
    assert isinstance(timeline, models.EventPage)
    assert [event.code for event in timeline.results][:3] == ["U4", "U6", "S1"], timeline
    assert isinstance(listed, models.StrategyPage) and [s.id for s in listed.results] == [created.id]

    # The errors parse into the one Error shape the schema names, fields and all.
    bad = op(generated, "strategies", "strategies_create").sync_detailed(
        client=app, body=models.StrategyCreateInputRequest.from_dict({**plan.to_dict(), "quantity": 0})
    )
    missing = op(generated, "strategies", "strategies_detail").sync_detailed(created.id + 1000, client=app)
    assert bad.status_code == 400 and isinstance(bad.parsed, models.Error)
    assert "quantity" in bad.parsed.error.fields.additional_properties
    assert missing.status_code == 404 and isinstance(missing.parsed, models.Error)
