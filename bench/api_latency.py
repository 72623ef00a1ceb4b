"""API latency under load: p50/p99 of the main read and write endpoints of the mobile app
(login, list strategies, strategy detail, create strategy, timeline) at a fixed request
rate, with ``/healthz`` (no authentication, one database and one Redis round trip) as the
baseline of the same run.

    .venv/bin/python bench/api_latency.py [--seconds 12] [--rate-scale 1.0]

The web process is uvicorn on ``algotrader.asgi`` exactly as the Procfile starts it (one
process), on a PostgreSQL database and a Redis database of the benchmark's own (created,
migrated and flushed here). The load generator is open-loop: request i is due at
t0 + i/rate whatever happened to the earlier ones, sent from a thread pool, and its
latency counts from when it was due, so a stalled server shows up as latency instead of
silently lowering the offered rate (no coordinated omission). wrk is closed-loop, and
neither wrk2 nor vegeta is packaged here; locust paces per user (closed loop) and brings
gevent: hence this small generator. Writes bench/results/api_latency.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import requests

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))

from algotrader.appclient import AppClient  # noqa: E402
from algotrader.processes import ProcessGroup, free_port, manage, wait_until  # noqa: E402
from bench.database import ensure_database  # noqa: E402

PASSWORD = "bench passphrase that is long enough"  # noqa: S105 - a throwaway user of the bench database
SEEDED_STRATEGIES = 50  # one full page of the list endpoint


@dataclass(frozen=True)
class Endpoint:
    name: str
    method: str
    path: str
    rate: float  # requests a second offered
    body: str | None = None  # "login" or "strategy": built per request
    auth: bool = True
    paths: tuple[str, ...] = ()  # if given, request i asks paths[i % len(paths)] instead of path


def endpoints(detail_id: int, timeline_id: int, scale: float) -> list[Endpoint]:
    # Login is one PBKDF2 check (~0.5 s of CPU here, by design): a low rate, or it measures
    # nothing but a saturated core.
    return [
        Endpoint("healthz (baseline)", "GET", "/healthz", 40 * scale, auth=False),
        Endpoint("login", "POST", "/api/v1/auth/login/", 1 * scale, body="login", auth=False),
        Endpoint("list strategies", "GET", "/api/v1/strategies/", 20 * scale),
        Endpoint("strategy detail", "GET", f"/api/v1/strategies/{detail_id}/", 20 * scale),
        Endpoint("create strategy", "POST", "/api/v1/strategies/", 10 * scale, body="strategy"),
        Endpoint("timeline", "GET", f"/api/v1/strategies/{timeline_id}/events/", 20 * scale),
    ]


def percentile(values: list[float], pct: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


class Bench:
    """The run (a database and Redis of its own, migrate, one uvicorn), the seed and the open-loop
    phases; a benchmark of other endpoints overrides ``seed``, ``endpoints`` and ``setup``."""

    name = "api_latency"

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.local = threading.local()

    def run(self) -> dict[str, Any]:
        ensure_database(self.args.database_url)
        env = {
            **os.environ,
            "DATABASE_URL": self.args.database_url,
            "REDIS_URL": self.args.redis_url,
            "DJANGO_SETTINGS_MODULE": "algotrader.settings",
            # The generator is one client address and one account: the auth throttles and the
            # lockout would measure themselves.
            "THROTTLE_AUTH_PER_IP": "100000/min",
            "THROTTLE_AUTH_PER_ACCOUNT": "100000/min",
            "AXES_FAILURE_LIMIT": "100000",
        }
        import redis

        redis.Redis.from_url(self.args.redis_url).flushdb()
        self.env = env
        group = self.group = ProcessGroup(RESULTS / "logs" / self.name, env)
        group.start("migrate", manage("migrate", "--noinput", "-v", "0"))
        if group.processes["migrate"].wait(timeout=300) != 0:
            sys.exit(f"migrate failed:\n{group.log('migrate')}")
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-m", "uvicorn", "algotrader.asgi:application", "--host", "127.0.0.1"]
        group.start("web", [*command, "--port", str(port), "--no-access-log", "--lifespan", "off"])
        try:
            wait_until(self._healthy, timeout=60, interval=0.2, why=group.logs)
            self.seed()
            phases = [self.phase(endpoint) for endpoint in self.endpoints()]
        finally:
            group.stop_all()
        return {
            "measured_at": datetime.now(UTC).isoformat(),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
            "setup": {
                "server": "uvicorn algotrader.asgi:application, one process (as the Procfile), PostgreSQL, Redis",
                "generator": "open loop, fixed rate per endpoint, latency from each request's due time",
                "seconds_per_endpoint": self.args.seconds,
                **self.setup(),
            },
            "endpoints": phases,
        }

    def endpoints(self) -> list[Endpoint]:
        return endpoints(self.detail_id, self.timeline_id, self.args.rate_scale)

    def setup(self) -> dict[str, Any]:
        return {"seeded_strategies": SEEDED_STRATEGIES, "timeline_events": self.timeline_events}

    def _healthy(self) -> bool:
        try:
            return requests.get(f"{self.base}/healthz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def log_in(self) -> AppClient:
        """A new user, registered and logged in through the API: the phases' access token."""
        self.email = f"bench-{int(time.time())}@example.com"
        client = AppClient(self.base)
        client.register(self.email, PASSWORD)
        client.login(self.email, PASSWORD)
        self.access = client.access
        return client

    def seed(self) -> None:
        """One user with a paper account and a full page of strategies, one of them started
        (its timeline: U4, U6, S1, S2, S3), through the API itself."""
        client = self.log_in()
        self.account_id = client.connect_paper("bench")["id"]
        ids = [client.create_strategy(**self.strategy_body())["id"] for _ in range(SEEDED_STRATEGIES)]
        self.detail_id = ids[0]
        self.timeline_id = ids[1]
        client.start(self.timeline_id)
        self.timeline_events = len(client.timeline(self.timeline_id))

    def strategy_body(self) -> dict[str, Any]:
        # Tomorrow on the always-open simulated exchange: valid at any hour of any day.
        tomorrow = datetime.now(ZoneInfo("Asia/Kolkata")).date() + timedelta(days=1)
        return {
            "broker_account": self.account_id,
            "exchange": "NSE",
            "symbol": "INFY",
            "quantity": 1,
            "buy_at": "10:00",
            "sell_at": "15:00",
            "stop_loss_percent": "2",
            "trade_date": tomorrow.isoformat(),
        }

    def session(self) -> requests.Session:
        session: requests.Session | None = getattr(self.local, "session", None)
        if session is None:
            session = self.local.session = requests.Session()
        return session

    def phase(self, endpoint: Endpoint) -> dict[str, Any]:
        total = max(1, round(endpoint.rate * self.args.seconds))
        headers = {"Authorization": f"Bearer {self.access}"} if endpoint.auth else {}
        body: dict[str, Any] | None = None
        if endpoint.body == "login":
            body = {"email": self.email, "password": PASSWORD}
        elif endpoint.body == "strategy":
            body = self.strategy_body()
        samples: list[tuple[float, float, int]] = []  # (from due, from sent, status)
        lock = threading.Lock()

        def one(due: float, path: str) -> None:
            sent = time.perf_counter()
            try:
                status = (
                    self.session()
                    .request(endpoint.method, f"{self.base}{path}", json=body, headers=headers, timeout=30)
                    .status_code
                )
            except requests.RequestException:
                status = 0
            done = time.perf_counter()
            with lock:
                samples.append((done - due, done - sent, status))

        print(f"  {endpoint.name}: {total} requests at {endpoint.rate:g}/s", flush=True)
        with ThreadPoolExecutor(max_workers=64) as pool:
            start = time.perf_counter() + 0.1
            for i in range(total):
                due = start + i / endpoint.rate
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                pool.submit(one, due, endpoint.paths[i % len(endpoint.paths)] if endpoint.paths else endpoint.path)
        ok = [s for s in samples if 200 <= s[2] < 300]
        latencies = [s[0] for s in ok]
        service = [s[1] for s in ok]
        return {
            "name": endpoint.name,
            "method": endpoint.method,
            "path": endpoint.path,
            "rate_per_second": endpoint.rate,
            "requests": total,
            "ok": len(ok),
            "errors": total - len(ok),
            "p50_ms": ms(percentile(latencies, 50)),
            "p90_ms": ms(percentile(latencies, 90)),
            "p99_ms": ms(percentile(latencies, 99)),
            "max_ms": ms(max(latencies) if latencies else None),
            "service_p50_ms": ms(percentile(service, 50)),
            "service_p99_ms": ms(percentile(service, 99)),
        }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/algotrader_bench_api")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--seconds", type=float, default=12, help="load per endpoint")
    parser.add_argument("--rate-scale", type=float, default=1.0, help="multiplies every endpoint's rate")
    args = parser.parse_args(argv)
    if args.redis_url.rsplit("/", 1)[-1] in {"", "0"}:
        sys.exit("--redis-url must name a Redis database of the benchmark's own (it is flushed)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))  # still stop the web process
    return run_and_report(Bench(args))


def run_and_report(bench: Bench) -> dict[str, Any]:
    """Run, write bench/results/<name>.json and print the table."""
    began = time.monotonic()
    result = bench.run()
    result["run_seconds"] = round(time.monotonic() - began, 1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{bench.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n{'endpoint':28} {'rate/s':>7} {'ok':>5} {'err':>4} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for row in result["endpoints"]:
        print(
            f"{row['name']:28} {row['rate_per_second']:7g} {row['ok']:5} {row['errors']:4} "
            f"{row['p50_ms']!s:>8} {row['p99_ms']!s:>8} {row['max_ms']!s:>8}"
        )
    print(f"wrote bench/results/{bench.name}.json ({result['run_seconds']} s)")
    return result


if __name__ == "__main__":
    main()
