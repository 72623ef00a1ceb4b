"""Orders in admin are read-only and listed in a fixed number of queries; the kill
switch is flipped from admin through the same services as ``manage.py entries``, and a
BUY is refused while it is on; risk limits are set by operators through the API's service."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client

from execution.models import EntryHalt, Order, RiskLimits
from execution.services import safety, strategy_buy_execute
from execution.services.risk import risk_limits_set
from monitoring.models import EventLog
from tests.factories import BrokerAccountFactory, UserFactory

pytestmark = pytest.mark.django_db

ORDERS = "/admin/execution/order/"
HALTS = "/admin/execution/entryhalt/"


@pytest.fixture
def operator() -> Client:
    client = Client()
    client.force_login(UserFactory.create(is_staff=True, is_superuser=True))
    return client


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def filled_orders(make_strategy, count: int) -> list[Order]:
    made = []
    account = BrokerAccountFactory.create()  # one owner: hashing a password per row would dominate the test
    for n in range(count):
        strategy = make_strategy(account)
        made.append(
            Order.objects.create(
                strategy=strategy,
                account=strategy.broker_account,
                side="BUY",
                reason="BUY",
                quantity=1,
                tag=f"AT{n:04d}",
                broker_order_id=f"PAPER-{n}",
                status="COMPLETE" if n % 2 else "REJECTED",
            )
        )
    return made


def test_the_order_list_takes_a_fixed_number_of_queries(operator, make_strategy, django_assert_max_num_queries):
    filled_orders(make_strategy, 25)

    with django_assert_max_num_queries(8):
        page = operator.get(ORDERS, {"status__exact": "COMPLETE", "reason__exact": "BUY", "side__exact": "BUY"})

    assert page.status_code == 200
    assert len(page.context["cl"].result_list) == 12


@pytest.mark.parametrize(("term", "found"), [("at0003", ["AT0003"]), ("PAPER-7", ["AT0007"]), ("AT99", [])])
def test_orders_are_found_by_tag_or_broker_order_id_exactly(operator, make_strategy, term, found):
    filled_orders(make_strategy, 10)

    page = operator.get(ORDERS, {"q": term})

    assert [order.tag for order in page.context["cl"].result_list] == found


def test_orders_are_read_only(operator, make_strategy):
    (order,) = filled_orders(make_strategy, 1)

    page = operator.get(f"{ORDERS}{order.pk}/change/")
    posted = operator.post(f"{ORDERS}{order.pk}/change/", {"status": "CANCELLED"})
    added = operator.get(f"{ORDERS}add/")

    assert page.status_code == 200
    assert 'name="status"' not in page.content.decode()
    assert posted.status_code == 403
    assert added.status_code == 403
    order.refresh_from_db()
    assert order.status == "REJECTED"


def test_the_kill_switch_from_admin_refuses_a_buy_until_resumed(operator, make_strategy):
    strategy = make_strategy()

    added = operator.post(f"{HALTS}add/", {"account": "", "reason": "exchange glitch"}, follow=True)
    (halt,) = EntryHalt.objects.all()
    refused = strategy_buy_execute(strategy_id=strategy.pk)

    assert messages_of(added)[0] == "New BUYs halted on every account; exits still run."
    assert (halt.account, halt.reason) == (None, "exchange glitch")
    assert refused is None
    assert not Order.objects.filter(strategy=strategy).exists()
    assert EventLog.objects.filter(strategy=strategy, code="L4", payload__alert="entries_halted").exists()

    resumed = operator.post(HALTS, {"action": "resume", "_selected_action": [halt.pk]}, follow=True)
    bought = strategy_buy_execute(strategy_id=strategy.pk)

    assert messages_of(resumed) == ["New BUYs resumed on every account (1 halt(s) lifted)."]
    assert not EntryHalt.objects.exists()
    assert bought is not None and bought.status == "COMPLETE"


def test_a_halt_set_in_admin_is_the_one_the_entries_command_shows_and_lifts(operator):
    account = BrokerAccountFactory.create()
    operator.post(f"{HALTS}add/", {"account": account.pk, "reason": "user asked"})
    shown = StringIO()

    call_command("entries", "status", stdout=shown)
    call_command("entries", "resume", "--account", str(account.pk), stdout=StringIO())

    assert f"halt {account.pk}: user asked" in shown.getvalue()
    assert not EntryHalt.objects.exists()


def test_halting_an_account_twice_is_answered_on_the_form_not_with_an_error(operator):
    account = BrokerAccountFactory.create()
    safety.entries_halt(account=account, reason="first")

    again = operator.post(f"{HALTS}add/", {"account": account.pk, "reason": "second"})

    assert again.status_code == 200
    assert "already exists" in again.content.decode()
    assert list(EntryHalt.objects.values_list("reason", flat=True)) == ["first"]


def test_the_halt_list_and_the_account_flag_take_a_fixed_number_of_queries(operator, django_assert_max_num_queries):
    accounts = BrokerAccountFactory.create_batch(20, owner=UserFactory.create())
    for account in accounts[:10]:
        safety.entries_halt(account=account, reason="test")

    with django_assert_max_num_queries(8):
        halts = operator.get(HALTS)
    with django_assert_max_num_queries(8):
        listed = operator.get("/admin/brokers/brokeraccount/")

    assert halts.status_code == listed.status_code == 200
    assert len(halts.context["cl"].result_list) == 10
    flags = {account.pk: account.halted for account in listed.context["cl"].result_list}
    assert flags == {account.pk: account in accounts[:10] for account in accounts}


def test_a_second_kill_switch_is_answered_with_the_one_already_on(operator):
    safety.entries_halt(reason="first drill")

    again = operator.post(f"{HALTS}add/", {"account": "", "reason": "second drill"}, follow=True)

    assert messages_of(again)[0] == "New BUYs were already halted on every account: first drill"
    assert list(EntryHalt.objects.values_list("reason", flat=True)) == ["first drill"]


LIMITS = "/admin/execution/risklimits/"
NO_LIMITS = dict.fromkeys(RiskLimits.LIMITS, "")


def test_an_operator_sets_an_accounts_risk_limits_and_the_next_buy_is_refused(operator, make_strategy):
    held = make_strategy(position="BOUGHT")
    strategy = make_strategy(account=held.broker_account)

    response = operator.post(
        f"{LIMITS}add/",
        {**NO_LIMITS, "user": strategy.owner_id, "account": strategy.broker_account_id, "max_open_positions": "1"},
    )

    assert response.status_code == 302, response.content
    limits = RiskLimits.objects.get(account=strategy.broker_account)
    assert (limits.user_id, limits.max_open_positions, limits.max_loss_per_day) == (strategy.owner_id, 1, None)
    assert strategy_buy_execute(strategy_id=strategy.pk) is None
    assert operator.get(LIMITS).status_code == 200


def test_an_operator_cannot_give_a_user_another_users_account_limits(operator):
    account = BrokerAccountFactory.create()
    stranger = UserFactory.create()

    response = operator.post(
        f"{LIMITS}add/",
        {**NO_LIMITS, "user": stranger.pk, "account": account.pk, "max_open_positions": "1"},
    )

    assert response.status_code == 200
    assert "account" in response.context["adminform"].form.errors
    assert not RiskLimits.objects.exists()


def test_an_operator_changes_a_users_limits_through_the_service(operator):
    user = UserFactory.create()
    limits = risk_limits_set(user=user, max_orders_per_day=5)

    response = operator.post(f"{LIMITS}{limits.pk}/change/", {**NO_LIMITS, "max_open_positions": "2"})

    assert response.status_code == 302, response.content
    limits.refresh_from_db()
    assert (limits.max_open_positions, limits.max_orders_per_day) == (2, None)
    assert RiskLimits.objects.count() == 1
