"""How long the operators' event log page takes with 100,000 events: the admin's
changelist (unfiltered, by code, by strategy, by user, a far page) through Django's test
client, timed on a PostgreSQL database of its own (created and migrated here). Prints,
per view, the median and worst of --samples page loads and the queries each one made;
writes bench/results/admin_eventlog.json.

    python bench/admin_eventlog.py [--events 100000] [--samples 10]
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))

from bench.database import ensure_database  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/algotrader_bench_admin")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12")
    args = parser.parse_args()
    os.environ.update(
        DATABASE_URL=args.database_url,
        REDIS_URL=args.redis_url,
        DJANGO_SETTINGS_MODULE="algotrader.settings",
        LOG_LEVEL="WARNING",
        ALLOWED_HOSTS="testserver",
    )
    ensure_database(args.database_url)

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, setup_test_environment
    from django.utils import timezone

    from monitoring.events import Event
    from monitoring.models import EventLog
    from tests.factories import UserFactory
    from tests.strategies.factories_scheduling import strategy_create

    setup_test_environment()
    call_command("migrate", verbosity=0)
    operator = UserFactory.create(is_staff=True, is_superuser=True)
    strategies = [strategy_create(buy_fire_at=timezone.now(), sell_fire_at=timezone.now()) for _ in range(20)]
    existing = EventLog.objects.count()
    if existing < args.events:
        codes = [event.code for event in Event]
        table = EventLog._meta.db_table
        with connection.cursor() as cursor:  # one statement: the rows spread over codes, strategies, a day
            cursor.execute(
                f"INSERT INTO {table} (code, user_id, strategy_id, message, payload, created_at) "  # noqa: S608
                "SELECT (%s::text[])[1 + n %% %s], %s, (%s::bigint[])[1 + n %% %s], 'bench event ' || n, "
                "'{}'::jsonb, now() - (n || ' seconds')::interval FROM generate_series(1, %s) AS n",
                [
                    codes,
                    len(codes),
                    strategies[0].owner_id,
                    [s.pk for s in strategies],
                    len(strategies),
                    args.events - existing,
                ],
            )
            cursor.execute(f"ANALYZE {table}")
    total = EventLog.objects.count()
    client = Client()
    client.force_login(operator)
    views = {
        "unfiltered": "",
        "code=L4": "?code=L4",
        "strategy": f"?strategy={strategies[3].pk}",
        "user": f"?user={strategies[0].owner_id}",
        "page 50": "?p=50",
        "search": "?q=event+99999",
    }
    results = {}
    for name, query in views.items():
        times = []
        for _ in range(args.samples):
            with CaptureQueriesContext(connection) as captured:
                started = time.perf_counter()
                response = client.get("/admin/monitoring/eventlog/" + query)
                times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (name, response.status_code)
        results[name] = {
            "median_ms": round(statistics.median(times), 1),
            "max_ms": round(max(times), 1),
            "queries": len(captured),
        }
        print(
            f"{name:12} median {results[name]['median_ms']:7.1f} ms  max {results[name]['max_ms']:7.1f} ms  "
            f"{results[name]['queries']} queries"
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "admin_eventlog.json").write_text(json.dumps({"events": total, "views": results}, indent=2))
    print(f"{total} events")


if __name__ == "__main__":
    main()
