"""The daily Kite login in one tap, over real HTTP: the app asks for a login link
(``GET /api/v1/broker-accounts/{id}/kite-login/``), the browser opens it at the Kite
simulator, which sends it back to ``/kite/callback/`` with a request token and the state;
the callback finishes the login and says so, or refuses with a 400 page that says why."""

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
import requests
import time_machine
from django.conf import settings as django_settings
from django.test import Client
from django.utils import timezone
from rest_framework_simplejwt.tokens import RefreshToken

from brokers.kite_sim import KiteSimulator, SimAccount
from brokers.models import BrokerAccount
from brokers.services import kite_session_expiry
from monitoring.models import EventLog
from tests.brokers.kite_sim_fixtures import kite_sim
from tests.factories import BrokerAccountFactory, UserFactory

__all__ = ["kite_sim"]

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/api/v1/broker-accounts/"


@pytest.fixture(autouse=True)
def kite_points_at_the_simulator(settings, kite_sim: KiteSimulator) -> None:
    settings.KITE_API_ROOT = kite_sim.api_root
    settings.KITE_WS_ROOT = kite_sim.ws_root
    settings.KITE_LOGIN_URL = f"{kite_sim.api_root}/connect/login"


@pytest.fixture
def kite_user(live_server, kite_sim: KiteSimulator) -> Callable[..., tuple[BrokerAccount, SimAccount]]:
    """A user of ours with a Kite account that needs its daily login, and that Kite user at
    the simulator, whose login page sends the browser back to this server's callback."""

    def make(owner: Any = None) -> tuple[BrokerAccount, SimAccount]:
        sim_account = kite_sim.create_account(redirect_url=f"{live_server.url}/kite/callback/")
        kite_sim.expire_token(sim_account.api_key)  # logged out, as every morning
        account = BrokerAccountFactory.create(
            owner=owner or UserFactory.create(),
            kind="kite",
            api_key=sim_account.api_key,
            api_secret=sim_account.api_secret,
            access_token="",
            status=BrokerAccount.Status.LOGIN_REQUIRED,
            token_expires_at=None,
        )
        return account, sim_account

    return make


def login_link(live_server, account: BrokerAccount) -> dict[str, Any]:
    """What the app gets, over HTTP with the owner's JWT."""
    token = RefreshToken.for_user(account.owner).access_token
    response = requests.get(
        f"{live_server.url}{URL}{account.pk}/kite-login/", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert response.status_code == 200, response.text
    link: dict[str, Any] = response.json()
    return link


def kite_redirect(login_url: str) -> str:
    """The browser at Kite's login page, stopped before it follows the redirect back."""
    response = requests.get(login_url, allow_redirects=False, timeout=10)
    assert response.status_code == 302
    return response.headers["Location"]


def state_of(login_url: str) -> str:
    redirect_params = parse_qs(urlparse(login_url).query)["redirect_params"][0]
    return parse_qs(redirect_params)["state"][0]


def query_of(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlparse(url).query).items()}


def browser_signed_in_as(user: Any) -> requests.Session:
    """A browser holding a session of ours for ``user`` (as the admin's login leaves one)."""
    client = Client()
    client.force_login(user)
    browser = requests.Session()
    browser.cookies.set(django_settings.SESSION_COOKIE_NAME, client.cookies[django_settings.SESSION_COOKIE_NAME].value)
    return browser


def test_the_round_trip_makes_the_account_active_with_the_new_token(live_server, kite_sim, kite_user):
    # given a Kite account that needs today's login
    account, sim_account = kite_user()

    # when the app's login link is opened in a browser, which Kite sends back to us
    link = login_link(live_server, account)
    page = requests.get(link["login_url"], timeout=10)

    # then the page says it is done and the account trades with the session Kite issued
    assert page.status_code == 200, page.text
    assert urlparse(page.url).path == "/kite/callback/"
    assert "Login done" in page.text and "return to the app" in page.text
    account.refresh_from_db()
    assert account.status == BrokerAccount.Status.ACTIVE
    assert account.access_token == kite_sim.account(sim_account.api_key).access_token
    assert account.token_expires_at == kite_session_expiry(account.last_validated_at)
    assert list(EventLog.objects.filter(user=account.owner).values_list("code", flat=True)) == ["B1"]
    assert "<script" not in page.text and "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["Cache-Control"].startswith("max-age=0") and page.headers["Referrer-Policy"] == "no-referrer"
    for secret in (account.access_token, sim_account.api_secret, query_of(page.url)["request_token"]):
        assert secret not in page.text


def test_the_login_link_expires_when_the_setting_says(live_server, kite_user, settings):
    account, _ = kite_user()
    settings.KITE_LOGIN_STATE_TTL_SECONDS = 120

    link = login_link(live_server, account)

    expires_at = datetime.fromisoformat(link["expires_at"])
    assert timedelta(seconds=110) < expires_at - timezone.now() <= timedelta(seconds=120)


def test_a_replayed_redirect_is_refused_and_changes_nothing(live_server, kite_user):
    # given a login completed through Kite's redirect
    account, _ = kite_user()
    callback = kite_redirect(login_link(live_server, account)["login_url"])
    assert requests.get(callback, timeout=10).status_code == 200
    account.refresh_from_db()
    session_token = account.access_token

    # when the same redirect (state and request token) comes again
    replayed = requests.get(callback, timeout=10)

    # then it is refused as a used link, and the session stays the one the login made
    assert replayed.status_code == 400
    assert "already been used" in replayed.text and "login_state_used" in replayed.text
    account.refresh_from_db()
    assert account.access_token == session_token
    assert EventLog.objects.filter(user=account.owner, code="B1").count() == 1


def test_a_replayed_request_token_with_a_fresh_state_is_refused_by_kite(live_server, kite_user):
    # given a login completed, and a fresh login link of the same account
    account, _ = kite_user()
    first = kite_redirect(login_link(live_server, account)["login_url"])
    assert requests.get(first, timeout=10).status_code == 200
    fresh_state = state_of(login_link(live_server, account)["login_url"])

    # when the spent request token comes back under the fresh state
    query = {
        "state": fresh_state,
        "action": "login",
        "status": "success",
        "request_token": query_of(first)["request_token"],
    }
    page = requests.get(f"{live_server.url}/kite/callback/?{urlencode(query)}", timeout=10)

    # then Kite refuses it (B2) and the page says so
    assert page.status_code == 400
    assert "Kite refused the login" in page.text and "broker_auth_failed" in page.text
    assert EventLog.objects.filter(user=account.owner, code="B2").count() == 1


def test_a_redirect_replayed_by_another_signed_in_user_is_refused(live_server, kite_user):
    # given user A's redirect from Kite, not yet followed, and user B signed in to our site
    account, _ = kite_user()
    callback = kite_redirect(login_link(live_server, account)["login_url"])
    intruder = UserFactory.create()

    # when B's browser completes it
    page = browser_signed_in_as(intruder).get(callback, timeout=10)

    # then it is refused, A's account is untouched, and the link is spent for anyone else too
    assert page.status_code == 400
    assert "started by another user" in page.text and "login_state_foreign" in page.text
    account.refresh_from_db()
    assert account.status == BrokerAccount.Status.LOGIN_REQUIRED and account.access_token == ""
    again = requests.get(callback, timeout=10)
    assert again.status_code == 400 and "login_state_used" in again.text


def test_the_owner_signed_in_to_our_site_completes_the_login(live_server, kite_user):
    account, _ = kite_user()
    callback = kite_redirect(login_link(live_server, account)["login_url"])

    page = browser_signed_in_as(account.owner).get(callback, timeout=10)

    assert page.status_code == 200, page.text
    account.refresh_from_db()
    assert account.status == BrokerAccount.Status.ACTIVE


def test_another_users_state_with_this_users_request_token_changes_neither_account(live_server, kite_user):
    # given user A's request token from Kite, and user B's own login state
    account_a, _ = kite_user()
    account_b, _ = kite_user()
    request_token_a = query_of(kite_redirect(login_link(live_server, account_a)["login_url"]))["request_token"]
    state_b = state_of(login_link(live_server, account_b)["login_url"])

    # when B completes his state with A's request token
    query = {"state": state_b, "action": "login", "status": "success", "request_token": request_token_a}
    page = requests.get(f"{live_server.url}/kite/callback/?{urlencode(query)}", timeout=10)

    # then Kite refuses the token for B's app, and neither account gets a session
    assert page.status_code == 400
    assert "Kite refused the login" in page.text and "broker_auth_failed" in page.text
    for account in (account_a, account_b):
        account.refresh_from_db()
        assert account.status == BrokerAccount.Status.LOGIN_REQUIRED and account.access_token == ""


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda state: state[:-1] + ("A" if state[-1] != "A" else "B"), id="signature_changed"),
        pytest.param(lambda state: state.replace(state.split(":")[0], state.split(":")[0] + "e30"), id="claim_changed"),
        pytest.param(lambda state: "", id="missing"),
    ],
)
def test_a_tampered_state_is_refused(live_server, kite_user, tamper):
    account, _ = kite_user()
    callback = kite_redirect(login_link(live_server, account)["login_url"])
    query = {**query_of(callback), "state": tamper(query_of(callback)["state"])}

    page = requests.get(f"{live_server.url}/kite/callback/?{urlencode(query)}", timeout=10)

    assert page.status_code == 400
    assert "not valid" in page.text and "login_state_invalid" in page.text
    account.refresh_from_db()
    assert account.status == BrokerAccount.Status.LOGIN_REQUIRED


def test_an_expired_state_is_refused(live_server, kite_user, settings):
    # given a redirect from Kite whose link was made longer ago than the state lives
    account, _ = kite_user()
    callback = kite_redirect(login_link(live_server, account)["login_url"])

    # when it arrives after the link's life
    later = timezone.now() + timedelta(seconds=settings.KITE_LOGIN_STATE_TTL_SECONDS + 5)
    with time_machine.travel(later, tick=True):
        page = requests.get(callback, timeout=10)

    # then it is refused as expired and nothing changes
    assert page.status_code == 400
    assert "has expired" in page.text and "login_state_expired" in page.text
    account.refresh_from_db()
    assert account.status == BrokerAccount.Status.LOGIN_REQUIRED


def test_a_cancelled_login_is_refused_and_spends_its_state(live_server, kite_user):
    # given a login link whose Kite login the user cancelled
    account, _ = kite_user()
    callback = kite_redirect(login_link(live_server, account)["login_url"])
    cancelled = {**query_of(callback), "status": "cancelled"}
    del cancelled["request_token"]

    # when Kite's redirect says so
    page = requests.get(f"{live_server.url}/kite/callback/?{urlencode(cancelled)}", timeout=10)

    # then the page says it was cancelled, and the state completes nothing later
    assert page.status_code == 400
    assert "cancelled" in page.text and "login_cancelled" in page.text
    again = requests.get(callback, timeout=10)
    assert again.status_code == 400 and "login_state_used" in again.text
    account.refresh_from_db()
    assert account.status == BrokerAccount.Status.LOGIN_REQUIRED
    assert not EventLog.objects.filter(user=account.owner, code__in=["B1", "B2"]).exists()
