"""The daily refresh of the instrument list: the task over real HTTP against the Kite simulator's
dump, idempotent upserts, rows the dump dropped removed, an empty or failed dump changing nothing,
the paper broker's shipped list, and the operators' command (from the broker or a file)."""

from decimal import Decimal

import pytest
import requests
from django.core.management import CommandError, call_command

from brokers.adapters.registry import dump_adapter_for
from brokers.exceptions import BrokerUnavailable
from brokers.instruments import load_instruments
from brokers.models import Instrument
from brokers.tasks import refresh_instruments_task
from tests.brokers.kite.servers import canned_kite, closed_port
from tests.brokers.kite_sim_fixtures import kite_sim
from tests.factories import InstrumentFactory

__all__ = ["kite_sim"]

pytestmark = pytest.mark.django_db

SHIPPED_NSE = sum(1 for i in load_instruments() if i.exchange == "NSE")


@pytest.fixture
def from_kite_sim(settings, kite_sim):
    settings.INSTRUMENTS_BROKER = "kite"
    settings.KITE_API_ROOT = kite_sim.api_root
    settings.INSTRUMENTS_EXCHANGES = ["NSE"]
    return kite_sim


def nse() -> dict[str, Instrument]:
    return {i.symbol: i for i in Instrument.objects.filter(exchange="NSE")}


def test_the_task_fills_an_empty_list_from_the_kite_simulators_dump(from_kite_sim):
    Instrument.objects.all().delete()

    kept = refresh_instruments_task()

    rows = nse()
    assert kept == {"NSE": SHIPPED_NSE} and len(rows) == SHIPPED_NSE
    infy = rows["INFY"]
    assert (infy.instrument_token, infy.exchange_token, infy.name) == (408065, 1594, "INFOSYS")
    assert (infy.tick_size, infy.lot_size, infy.segment, infy.instrument_type) == (Decimal("0.1"), 1, "NSE", "EQ")
    assert infy.last_price == Decimal("1540.2")
    assert rows["NIFTY 50"].segment == "INDICES"


def test_the_task_run_twice_leaves_one_row_per_instrument(from_kite_sim):
    refresh_instruments_task()
    first = {symbol: (row.pk, row.refreshed_at) for symbol, row in nse().items()}

    refresh_instruments_task()
    second = {symbol: (row.pk, row.refreshed_at) for symbol, row in nse().items()}

    assert first.keys() == second.keys() and len(second) == SHIPPED_NSE
    assert all(second[symbol][0] == first[symbol][0] for symbol in first)  # updated in place
    assert all(second[symbol][1] > first[symbol][1] for symbol in first)


def test_a_refresh_corrects_changed_rows_and_removes_those_the_dump_no_longer_lists(from_kite_sim):
    Instrument.objects.filter(exchange="NSE", symbol="INFY").update(tick_size=Decimal(1), lot_size=50, name="OLD")
    InstrumentFactory(exchange="NSE", symbol="DELISTED")
    kept_elsewhere = InstrumentFactory.create(exchange="BSE", symbol="BSEONLY")

    refresh_instruments_task()

    rows = nse()
    assert (rows["INFY"].tick_size, rows["INFY"].lot_size, rows["INFY"].name) == (Decimal("0.1"), 1, "INFOSYS")
    assert "DELISTED" not in rows
    assert Instrument.objects.filter(pk=kept_elsewhere.pk).exists()  # another exchange's rows are not this dump's


def test_an_exchange_whose_dump_is_empty_keeps_its_list(from_kite_sim, settings):
    settings.INSTRUMENTS_EXCHANGES = ["NSE", "BSE"]
    listed = InstrumentFactory.create(exchange="BSE", symbol="BSEONLY")

    kept = refresh_instruments_task()

    assert kept == {"NSE": SHIPPED_NSE, "BSE": 0}
    assert Instrument.objects.filter(pk=listed.pk).exists()


def test_a_broker_that_does_not_answer_fails_the_refresh_and_changes_nothing(settings):
    settings.INSTRUMENTS_BROKER = "kite"
    settings.KITE_API_ROOT = f"http://127.0.0.1:{closed_port()}"
    before = set(Instrument.objects.values_list("instrument_token", "refreshed_at"))

    with pytest.raises(BrokerUnavailable):
        refresh_instruments_task()

    assert set(Instrument.objects.values_list("instrument_token", "refreshed_at")) == before


def test_the_simulator_gzips_the_dump_as_kite_does(kite_sim):
    headers = {"X-Kite-Version": "3", "Accept-Encoding": "gzip"}

    response = requests.get(f"{kite_sim.api_root}/instruments/NSE", headers=headers, timeout=5)

    assert response.status_code == 200
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.text.splitlines()[0].startswith("instrument_token,exchange_token,tradingsymbol,name")
    assert len(response.text.splitlines()) == SHIPPED_NSE + 1


def test_the_dump_is_fetched_without_a_session(settings):
    with canned_kite() as canned:
        canned.answer(200, b"instrument_token,exchange_token,tradingsymbol,exchange\n", content_type="text/csv")
        settings.KITE_API_ROOT = canned.root

        assert dump_adapter_for("kite").instruments("NSE") == []

    assert canned.received[0].path == "/instruments/NSE"
    assert "Authorization" not in canned.received[0].headers


def test_the_paper_broker_refreshes_from_the_shipped_list(settings):
    settings.INSTRUMENTS_BROKER = "paper"
    settings.INSTRUMENTS_EXCHANGES = ["NSE"]
    Instrument.objects.all().delete()

    assert refresh_instruments_task() == {"NSE": SHIPPED_NSE}
    assert Instrument.objects.count() == SHIPPED_NSE


def test_the_command_refreshes_from_the_broker(settings, capsys):
    settings.INSTRUMENTS_BROKER = "paper"
    Instrument.objects.all().delete()

    call_command("refresh_instruments", "--exchange", "nse")

    assert Instrument.objects.filter(exchange="NSE").count() == SHIPPED_NSE
    assert f"NSE: {SHIPPED_NSE} instrument(s)." in capsys.readouterr().out


def test_the_command_loads_a_dump_file(tmp_path, capsys):
    dump = tmp_path / "instruments.csv"
    dump.write_text(
        "instrument_token,exchange_token,tradingsymbol,name,last_price,expiry,strike,tick_size,lot_size,"
        "instrument_type,segment,exchange\n"
        "128083204,500332,NEWCO,NEW COMPANY,0,,0,0.05,1,EQ,BSE,BSE\n"
        "999999745,3906249,NOTASKED,NOT ASKED FOR,0,,0,0.05,1,EQ,NSE,NSE\n"
    )

    call_command("refresh_instruments", "--exchange", "BSE", "--file", str(dump))

    newco = Instrument.objects.get(exchange="BSE", symbol="NEWCO")
    assert (newco.instrument_token, newco.tick_size, newco.last_price) == (128083204, Decimal("0.05"), None)
    assert not Instrument.objects.filter(symbol="NOTASKED").exists()  # not an exchange asked for
    assert "BSE: 1 instrument(s)." in capsys.readouterr().out


def test_the_command_reports_an_unreadable_file(tmp_path):
    dump = tmp_path / "instruments.csv"
    dump.write_text("instrument_token,exchange_token,tradingsymbol,exchange\nnot-a-number,1,X,NSE\n")

    with pytest.raises(CommandError, match="not refreshed"):
        call_command("refresh_instruments", "--file", str(dump))
