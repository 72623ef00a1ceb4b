"""The operators' admin in a real browser: every list page opens, Stop and Exit now
act on real strategies (the exit's order reaches the paper broker's book through a
real worker), the kill switch refuses a BUY until it is lifted (the refusal is in the
event log and the alerts, filtered by code and kind), a holiday is added."""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from execution.models import EntryHalt, Order
from execution.tasks import execute_buy_task
from monitoring.models import EventLog
from strategies.models import MarketHoliday, Strategy
from tests.factories import BrokerAccountFactory
from tests.strategies.factories_scheduling import strategy_create
from tests.strategies.scheduling_helpers import declare_queues
from tests.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

LIST_PAGES = [
    "/admin/users/user/",
    "/admin/brokers/brokeraccount/",
    "/admin/brokers/paperorder/",
    "/admin/strategies/strategy/",
    "/admin/strategies/marketsession/",
    "/admin/strategies/marketholiday/",
    "/admin/strategies/runreadiness/",
    "/admin/execution/order/",
    "/admin/execution/entryhalt/",
    "/admin/execution/risklimits/",
    "/admin/monitoring/eventlog/",
    "/admin/monitoring/alert/",
]


def due_now(account=None, **fields) -> Strategy:
    """RUNNING on the always-open simulated exchange, its BUY due now."""
    now = timezone.now()
    return strategy_create(
        buy_fire_at=now - timedelta(seconds=1), sell_fire_at=now + timedelta(minutes=30), account=account, **fields
    )


def state(strategy: Strategy) -> tuple[str, str]:
    strategy.refresh_from_db()
    return strategy.status, strategy.position


def run_action(page: Page, action: str, *strategies: Strategy) -> None:
    page.goto("/admin/strategies/strategy/")
    for strategy in strategies:
        page.check(f"input[name=_selected_action][value='{strategy.pk}']")
    page.select_option("select[name=action]", action)
    page.click("button[name=index]")


def test_every_admin_list_page_opens_and_shows_no_secret(operator: Page):
    kite = BrokerAccountFactory.create(kite=True)
    due_now(account=kite)
    secrets = [kite.api_key, kite.api_secret, kite.access_token]

    for url in LIST_PAGES:
        response = operator.goto(url)
        assert response is not None and response.status == 200, url
        expect(operator.locator("#changelist")).to_be_visible()
        assert [secret for secret in secrets if secret in operator.content()] == [], url
    operator.goto(f"/admin/brokers/brokeraccount/{kite.pk}/change/")
    expect(operator.locator("body")).to_contain_text("Access token")
    assert [secret for secret in secrets if secret in operator.content()] == []


def test_an_operator_stops_one_strategy_and_exits_another_holding_shares(operator: Page, worker):
    declare_queues()
    account = BrokerAccountFactory.create()
    idle = strategy_create(
        buy_fire_at=timezone.now() + timedelta(hours=1), sell_fire_at=timezone.now() + timedelta(hours=2)
    )
    holding = due_now(account=account)
    execute_buy_task.delay(holding.pk)
    wait_until(lambda: state(holding) == ("RUNNING", "BOUGHT"), message=worker.text)

    run_action(operator, "stop", idle)

    expect(operator.locator("ul.messagelist")).to_contain_text(f"#{idle.pk} NSE:INFY")
    expect(operator.locator("ul.messagelist")).to_contain_text("stopped by an operator")
    assert state(idle) == ("STOPPED", "NONE")

    run_action(operator, "exit_now", holding)

    expect(operator.locator("ul.messagelist")).to_contain_text("its position is being sold at market")
    wait_until(lambda: state(holding)[0] == "EXITED", message=worker.text)
    sell = Order.objects.get(strategy=holding, side="SELL")
    assert (sell.reason, sell.status) == ("STOP", "COMPLETE")
    assert sell.tag is not None
    book = list(account.paper_orders.order_by("id").values_list("tag", "side", "status"))
    assert book == [
        (Order.objects.get(strategy=holding, side="BUY").tag, "BUY", "COMPLETE"),
        (sell.tag, "SELL", "COMPLETE"),
    ]

    operator.goto("/admin/monitoring/eventlog/?code__exact=S4")
    expect(operator.locator("#result_list")).to_contain_text(f"#{idle.pk}")
    expect(operator.locator("#result_list")).to_contain_text(f"#{holding.pk}")
    operator.goto(f"/admin/monitoring/eventlog/?code__exact=S5&strategy={holding.pk}")
    expect(operator.locator("#result_list tbody tr")).to_have_count(1)

    operator.goto(f"/admin/execution/order/?reason__exact=STOP&q={sell.tag.lower()}")
    expect(operator.locator("#result_list")).to_contain_text(sell.tag)
    operator.goto("/admin/brokers/paperorder/?status=COMPLETE")
    expect(operator.locator("#result_list")).to_contain_text(sell.tag)


def test_the_kill_switch_refuses_a_buy_until_an_operator_lifts_it(operator: Page, worker):
    declare_queues()
    operator.goto("/admin/execution/entryhalt/add/")
    operator.fill("#id_reason", "browser drill")
    operator.click("input[name=_save]")
    expect(operator.locator("ul.messagelist")).to_contain_text("New BUYs halted on every account; exits still run.")
    (halt,) = EntryHalt.objects.all()
    assert (halt.account, halt.reason) == (None, "browser drill")

    refused = due_now()
    execute_buy_task.delay(refused.pk)

    wait_until(
        lambda: EventLog.objects.filter(strategy=refused, payload__alert="entries_halted").exists(), message=worker.text
    )
    assert not Order.objects.filter(strategy=refused).exists()
    assert state(refused) == ("RUNNING", "NONE")

    operator.goto(f"/admin/monitoring/eventlog/?code__exact=L4&strategy={refused.pk}")
    expect(operator.locator("#result_list")).to_contain_text("BUY refused: new entries are halted (browser drill)")
    operator.goto("/admin/monitoring/alert/?state=open&kind__exact=entries_halted")
    expect(operator.locator("#result_list")).to_contain_text(f"strategy:{refused.pk}")
    operator.check("#result_list input[name=_selected_action]")
    operator.select_option("select[name=action]", "resolve")
    operator.click("button[name=index]")
    expect(operator.locator("ul.messagelist")).to_contain_text("1 alert(s) resolved.")

    operator.goto("/admin/execution/entryhalt/")
    operator.check(f"input[name=_selected_action][value='{halt.pk}']")
    operator.select_option("select[name=action]", "resume")
    operator.click("button[name=index]")
    expect(operator.locator("ul.messagelist")).to_contain_text("New BUYs resumed on every account")
    assert not EntryHalt.objects.exists()

    allowed = due_now()
    execute_buy_task.delay(allowed.pk)
    wait_until(lambda: state(allowed) == ("RUNNING", "BOUGHT"), message=worker.text)


def test_an_operator_sets_an_accounts_risk_limit_and_the_worker_refuses_the_next_buy(operator: Page, worker):
    declare_queues()
    account = BrokerAccountFactory.create()
    held = due_now(account=account, position=Strategy.Position.BOUGHT)
    operator.goto("/admin/execution/risklimits/add/")
    operator.fill("#id_user", str(account.owner_id))
    operator.fill("#id_account", str(account.pk))
    operator.fill("#id_max_open_positions", "1")
    operator.click("input[name=_save]")
    expect(operator.locator("ul.messagelist")).to_contain_text("was added successfully")

    refused = due_now(account=account)
    execute_buy_task.delay(refused.pk)

    wait_until(lambda: state(refused) == ("EXITED", "NONE"), message=worker.text)
    assert not Order.objects.filter(strategy=refused).exists()
    assert state(held) == ("RUNNING", "BOUGHT")
    operator.goto(f"/admin/monitoring/eventlog/?code__exact=G1&strategy={refused.pk}")
    expect(operator.locator("#result_list")).to_contain_text("max_open_positions")


def test_an_operator_adds_a_market_holiday(operator: Page):
    operator.goto("/admin/strategies/marketholiday/add/")
    operator.select_option("#id_venue", "NSE")
    operator.fill("#id_date", "2027-01-26")
    operator.fill("#id_description", "Republic Day")
    operator.click("input[name=_save]")

    expect(operator.locator("ul.messagelist")).to_contain_text("was added successfully")
    expect(operator.locator("#result_list")).to_contain_text("Republic Day")
    assert MarketHoliday.objects.filter(venue="NSE", date="2027-01-26", description="Republic Day").exists()
