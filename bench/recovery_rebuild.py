"""Recovery after a Redis flush with N running strategies (a third of them holding a
position with an armed stop, spread over 50 instruments, one beat slot per minute):
the time of ``runtime_rebuild`` alone (X1) and of the whole ``system_recover`` (X4: queue
bindings, rebuild, slot resync, settlement, lost-task scan), each after a FLUSHDB, and of
a second recovery with nothing to repair.

    .venv/bin/python bench/recovery_rebuild.py --strategies 10000

On a PostgreSQL database and a Redis database of its own (created, migrated, flushed);
writes bench/results/recovery_rebuild.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))

from bench.database import ensure_database  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--strategies", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/algotrader_bench_recovery")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12")
    args = parser.parse_args()
    if args.redis_url.rsplit("/", 1)[-1] in {"", "0"}:
        sys.exit("--redis-url must name a Redis database of the benchmark's own (it is flushed)")
    os.environ.update(
        DATABASE_URL=args.database_url,
        REDIS_URL=args.redis_url,
        DJANGO_SETTINGS_MODULE="algotrader.settings",
        LOG_LEVEL="WARNING",
    )
    ensure_database(args.database_url)

    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    seed(args.strategies)
    result = measure(args.strategies, args.runs)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "recovery_rebuild.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def seed(count: int) -> None:
    from algotrader.users.models import User
    from brokers.instruments import load_instruments
    from brokers.models import BrokerAccount
    from execution.models import Order
    from monitoring.models import EventLog
    from strategies.models import Strategy

    EventLog.objects.all().delete()
    Order.objects.all().delete()
    Strategy.objects.all().delete()
    user, _ = User.objects.get_or_create(email="bench-recovery@example.com")
    account, _ = BrokerAccount.objects.get_or_create(
        owner=user, label="bench", defaults={"kind": "paper", "status": "active"}
    )
    symbols = [i.symbol for i in load_instruments() if i.exchange == "NSE"][:50]
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    rows = []
    for n in range(count):
        held = n % 3 == 0
        buy = now + timedelta(minutes=10 + n % 60)
        rows.append(
            Strategy(
                owner=user,
                broker_account=account,
                venue="SIM",
                exchange="NSE",
                symbol=symbols[n % len(symbols)],
                quantity=1,
                trade_date=buy.date(),
                buy_at=buy.time(),
                sell_at=(buy + timedelta(hours=2)).time(),
                stop_loss_percent=Decimal("1.00"),
                status="RUNNING",
                position="BOUGHT" if held else "NONE",
                entry_price=Decimal("1000.00") if held else None,
                stop_trigger_price=Decimal("990.00") if held else None,
                buy_fire_at=buy,
                sell_fire_at=buy + timedelta(hours=2),
                buy_fired_at=now if held else None,
            )
        )
    Strategy.objects.bulk_create(rows, batch_size=2000)


def measure(count: int, runs: int) -> dict[str, Any]:
    from algotrader.redis_client import get_redis
    from execution.recovery.runtime import runtime_rebuild
    from execution.recovery.system import Trigger, system_recover

    rebuild, whole, again = [], [], []
    for _ in range(runs):
        get_redis().flushdb()
        started = time.perf_counter()
        loaded = runtime_rebuild()
        rebuild.append(time.perf_counter() - started)
        assert loaded.strategies == count, loaded
        get_redis().flushdb()
        started = time.perf_counter()
        report = system_recover(trigger=Trigger.COMMAND)
        whole.append(time.perf_counter() - started)
        assert report is not None and report.loaded.strategies == count, report
        started = time.perf_counter()
        system_recover(trigger=Trigger.COMMAND)
        again.append(time.perf_counter() - started)
    return {
        "strategies": count,
        "stops_armed": loaded.stops_armed,
        "instruments": loaded.instruments,
        "runs": runs,
        "rebuild_seconds": {"median": round(statistics.median(rebuild), 3), "max": round(max(rebuild), 3)},
        "recover_after_flush_seconds": {"median": round(statistics.median(whole), 3), "max": round(max(whole), 3)},
        "recover_again_seconds": {"median": round(statistics.median(again), 3), "max": round(max(again), 3)},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


if __name__ == "__main__":
    main()
