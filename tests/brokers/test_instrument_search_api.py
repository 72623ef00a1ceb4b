"""GET /api/v1/instruments/: prefix matches before fuzzy ones, the exchange filter, the limit,
the last price from the tick cache, 400s in the one error shape, and authentication."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
import redis
from django.db import connection

from algotrader import redis_keys
from algotrader.redis_client import get_redis
from brokers import selectors
from tests.brokers.kite.servers import closed_port
from tests.factories import InstrumentFactory

SEARCH = "/api/v1/instruments/"

pytestmark = pytest.mark.django_db


def symbols(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["symbol"] for row in response.json()]


def test_exact_symbol_then_symbol_prefixes_then_name_prefixes_then_fuzzy(auth_client):
    InstrumentFactory(symbol="INFRATEL", name="BHARTI INFRATEL")
    InstrumentFactory(symbol="INF", name="INF HOLDINGS")
    InstrumentFactory(symbol="INFY", name="INFOSYS")
    InstrumentFactory(symbol="NAUKRI", name="INFO EDGE INDIA")
    InstrumentFactory(symbol="INOXWIND", name="INOX WIND")  # shares "IN" alone: too far to be found

    found = symbols(auth_client.get(SEARCH, {"q": "inf", "exchange": "BSE"}))

    assert found == ["INF", "INFY", "INFRATEL", "NAUKRI"]


def test_a_misspelt_symbol_or_name_finds_its_instrument_after_the_prefix_matches(auth_client):
    InstrumentFactory(symbol="RELIANCE", name="RELIANCE INDUSTRIES")
    InstrumentFactory(symbol="RELAXO", name="RELAXO FOOTWEARS")
    InstrumentFactory(symbol="TCS", name="TATA CONSULTANCY SERV LT")

    assert symbols(auth_client.get(SEARCH, {"q": "RELAINCE", "exchange": "BSE"})) == ["RELIANCE", "RELAXO"]
    assert symbols(auth_client.get(SEARCH, {"q": "RELA", "exchange": "BSE"})) == ["RELAXO", "RELIANCE"]
    assert symbols(auth_client.get(SEARCH, {"q": "consultancy", "exchange": "BSE"})) == ["TCS"]


def test_the_exchange_filter_keeps_one_exchanges_instruments(auth_client):
    InstrumentFactory(symbol="INFY", exchange="BSE", name="INFOSYS")

    on_bse = auth_client.get(SEARCH, {"q": "INFY", "exchange": "BSE"}).json()
    on_nse = auth_client.get(SEARCH, {"q": "INFY", "exchange": "NSE"}).json()
    anywhere = auth_client.get(SEARCH, {"q": "INFY"}).json()

    assert [(r["exchange"], r["symbol"]) for r in on_bse] == [("BSE", "INFY")]
    assert (on_nse[0]["exchange"], on_nse[0]["symbol"]) == ("NSE", "INFY")  # the migration's seed
    assert {r["exchange"] for r in on_nse} == {"NSE"}
    assert {("BSE", "INFY"), ("NSE", "INFY")} <= {(r["exchange"], r["symbol"]) for r in anywhere}


def test_each_result_carries_tick_size_lot_size_and_the_last_tick(auth_client):
    InstrumentFactory(symbol="BANKX", tick_size=Decimal("0.05"), lot_size=15, last_price=Decimal("101.5"))
    get_redis().hset(redis_keys.price("BSE", "BANKX"), mapping={"price": "102.35", "ts": "1764900000.0"})

    (row,) = auth_client.get(SEARCH, {"q": "BANKX", "exchange": "BSE"}).json()

    assert row["tick_size"] == "0.0500"
    assert row["lot_size"] == 15
    assert row["last_price"] == "102.3500"
    assert datetime.fromisoformat(row["last_price_at"]) == datetime.fromtimestamp(1764900000, tz=UTC)


def test_without_a_tick_the_last_price_is_the_dumps_at_its_refresh(auth_client):
    listed = InstrumentFactory(symbol="QUIETCO", last_price=Decimal("55.1"))
    InstrumentFactory(symbol="QUIETER", last_price=None)

    rows = auth_client.get(SEARCH, {"q": "QUIET", "exchange": "BSE"}).json()

    assert [(r["symbol"], r["last_price"]) for r in rows] == [("QUIETCO", "55.1000"), ("QUIETER", None)]
    assert datetime.fromisoformat(rows[0]["last_price_at"]) == listed.refreshed_at
    assert rows[1]["last_price_at"] is None


def test_twenty_results_by_default_and_limit_up_to_fifty(auth_client):
    for n in range(60):
        InstrumentFactory(symbol=f"ZED{n:02d}")

    assert len(auth_client.get(SEARCH, {"q": "ZED", "exchange": "BSE"}).json()) == 20
    assert len(auth_client.get(SEARCH, {"q": "ZED", "exchange": "BSE", "limit": 50}).json()) == 50
    assert symbols(auth_client.get(SEARCH, {"q": "ZED", "exchange": "BSE", "limit": 3})) == ["ZED00", "ZED01", "ZED02"]


def test_nothing_like_the_query_answers_an_empty_list(auth_client):
    assert auth_client.get(SEARCH, {"q": "QQXQZ"}).json() == []


def test_characters_like_patterns_are_matched_as_themselves(auth_client):
    InstrumentFactory(symbol="M&M", name="MAHINDRA & MAHINDRA")
    InstrumentFactory(symbol="MRF", name="MRF")

    assert symbols(auth_client.get(SEARCH, {"q": "M&", "exchange": "BSE"})) == ["M&M"]
    assert symbols(auth_client.get(SEARCH, {"q": "%", "exchange": "BSE"})) == []
    assert "MRF" not in symbols(auth_client.get(SEARCH, {"q": "M_", "exchange": "BSE"}))


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "q"),
        ({"q": ""}, "q"),
        ({"q": "   "}, "q"),
        ({"q": "X" * 33}, "q"),
        ({"q": "INF", "exchange": "LSE"}, "exchange"),
        ({"q": "INF", "limit": 0}, "limit"),
        ({"q": "INF", "limit": 51}, "limit"),
        ({"q": "INF", "limit": "ten"}, "limit"),
        ({"q": "IN\x00F"}, "q"),
    ],
)
def test_bad_input_answers_400_for_its_field(auth_client, params, field):
    response = auth_client.get(SEARCH, params)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert list(error["fields"]) == [field]


def test_only_authenticated_users_search(api_client):
    response = api_client.get(SEARCH, {"q": "INF"})

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


@pytest.mark.parametrize("query", ["I", "INF", "RELAINCE", "consultancy"])
def test_every_step_of_the_search_reads_an_index(query):
    sql = selectors._SEARCH_SQL.format(distance=selectors._DISTANCE, exchange="exchange = %(exchange)s")
    params = {"term": query.upper(), "prefix": f"{query.upper()}%", "limit": 20, "exchange": "NSE"}
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # the seeded table is small enough to scan

        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())

    assert "Seq Scan" not in plan
    assert "instrument_symbol_prefix" in plan or "instrument_symbol_trgm" in plan


def test_a_search_answers_with_the_dumps_prices_while_redis_is_down(auth_client, monkeypatch):
    InstrumentFactory(symbol="OFFLINE", last_price=Decimal("10"))
    # A real client of a port nothing listens on: every command fails to connect.
    monkeypatch.setattr(selectors, "get_redis", lambda: redis.Redis(port=closed_port(), socket_connect_timeout=1))

    (row,) = auth_client.get(SEARCH, {"q": "OFFLINE", "exchange": "BSE"}).json()

    assert row["last_price"] == "10.0000"
