"""The paper broker passes the contract every broker adapter passes."""

import pytest

from brokers.adapters.paper import PaperAdapter
from tests.brokers.contract import AdapterContract
from tests.factories import BrokerAccountFactory


@pytest.fixture
def adapter(db):
    return PaperAdapter(BrokerAccountFactory.create(kind="paper", status="active"))


@pytest.fixture
def bad_adapter(db):
    # A paper account refuses nothing but an operator's disable.
    return PaperAdapter(BrokerAccountFactory.create(kind="paper", status="disabled"))


@pytest.fixture
def instrument():
    return ("NSE", "INFY")


class TestPaperAdapterContract(AdapterContract):
    pass
