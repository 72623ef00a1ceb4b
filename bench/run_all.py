"""`make bench`: every benchmark, one after the other, at sizes that finish in under ten
minutes on a 2-core machine, then one PNG chart per benchmark.

    .venv/bin/python -m bench.run_all [--only api_latency ...] [--redis-url redis://127.0.0.1:6379]

Each benchmark runs as its own process on a PostgreSQL database and a Redis database of
its own (the Redis databases are flushed: never point --redis-url at a server holding
anything of value on databases 9, 10, 11 and 12). Sizes below the issues' full sizes are
listed in SIZES with the full ones; pass ``--full`` for those (it takes far longer).
Writes bench/results/<name>.json and .png, and run_all.json / summary.md (the figures
the README shows, with the machine and its load)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
BUDGET_SECONDS = 600

# name -> (script, Redis db, database suffix, quick arguments, the issues' full arguments)
BENCHMARKS: dict[str, tuple[str, int, str, list[str], list[str]]] = {
    "api_latency": ("bench/api_latency.py", 12, "_api", ["--seconds", "10"], ["--seconds", "30"]),
    "instrument_search": (
        "bench/instrument_search.py",
        10,
        "_instruments",
        ["--seconds", "10", "--instruments", "9000"],
        ["--seconds", "30", "--instruments", "9000"],
    ),
    "schedule_burst": (
        "bench/schedule_burst.py",
        11,
        "",
        ["--sizes", "300", "1000", "--t3-strategies", "2000", "--t3-samples", "3"],
        ["--sizes", "1000", "5000", "--t3-strategies", "10000", "--t3-samples", "5"],
    ),
    "tick_to_order": (
        "bench/tick_to_order.py",
        9,
        "_market",
        ["--strategies", "2000", "--rounds", "15", "--backlog-batches", "100", "--baseline-samples", "100"],
        ["--strategies", "10000", "--rounds", "40", "--backlog-batches", "300", "--baseline-samples", "300"],
    ),
}


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def run_one(name: str, args: argparse.Namespace, remaining: float) -> dict[str, Any]:
    script, db, suffix, quick, full = BENCHMARKS[name]
    sizes = full if args.full else quick
    command = [
        sys.executable,
        script,
        *sizes,
        "--database-url",
        f"{args.database_prefix}{suffix}",
        "--redis-url",
        f"{args.redis_url.rstrip('/')}/{db}",
    ]
    print(f"\n##### {name}: {' '.join(command[1:])}", flush=True)
    began = time.monotonic()
    load_before = load()
    process = subprocess.Popen(command, cwd=ROOT)
    try:
        rc = process.wait(timeout=max(30.0, remaining))
    except subprocess.TimeoutExpired:
        # SIGTERM: each benchmark then stops the workers and servers it started.
        print(f"##### {name} overran the remaining budget ({remaining:.0f} s): stopping it", flush=True)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        rc = -1
    return {
        "arguments": sizes,
        "returncode": rc,
        "seconds": round(time.monotonic() - began, 1),
        "load_average_before": load_before,
        "load_average_after": load(),
    }


def summary_markdown(run: dict[str, Any]) -> str:
    """The figures the README shows, from each result file."""
    lines = [
        f"Measured {run['finished_at'][:16].replace('T', ' ')} UTC on {run['machine']['cpus']} CPUs"
        f" ({run['machine']['platform']}, Python {run['machine']['python']}), load average"
        f" {run['load_average_at_start'][0]} at the start; `make bench` took {run['seconds']:.0f} s.",
        "",
    ]
    api = _read("api_latency")
    if api:
        lines += ["| endpoint | rate | p50 | p99 |", "|---|---|---|---|"]
        lines += [
            f"| {r['name']} | {r['rate_per_second']:g}/s | {r['p50_ms']} ms | {r['p99_ms']} ms |"
            for r in api.get("endpoints", [])
        ]
        lines.append("")
    search = _read("instrument_search")
    if search:
        setup = search.get("setup") or {}
        lines += [
            f"Instrument search over {setup.get('instruments')} instruments:",
            "",
            "| endpoint | rate | p50 | p99 |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {r['name']} | {r['rate_per_second']:g}/s | {r['p50_ms']} ms | {r['p99_ms']} ms |"
            for r in search.get("endpoints", [])
        ]
        lines.append("")
    burst = _read("schedule_burst")
    if burst:
        lines += [
            "| burst (one BUY second) | floor p99 | slot scheduler p99 | ClockedSchedule each p99 |",
            "|---|---|---|---|",
        ]
        for body, sizes in (burst.get("series") or {}).items():
            for size, f in sizes.items():
                cells = [(f.get(key) or {}).get("p99") for key in ("floor", "slots", "per_strategy_clocked")]
                lines.append(f"| N = {size} ({body}) | " + " | ".join(f"{c} s" for c in cells) + " |")
        lines.append("")
    ticks = _read("tick_to_order")
    if ticks:
        frame = (ticks.get("b_tick_to_order") or {}).get("frame_to_order") or {}
        base = (ticks.get("c_baseline") or {}).get("http_post_plus_redis_round_trip") or {}
        throughput = (ticks.get("a_consumer_throughput") or {}).get("ticks_per_second")
        lines += [
            f"Tick consumer: {throughput} ticks/s. Tick frame to stop-loss order at the broker:"
            f" p50 {frame.get('p50_ms')} ms, p99 {frame.get('p99_ms')} ms"
            f" (baseline one order POST + one Redis round trip: p50 {base.get('p50_ms')} ms,"
            f" p99 {base.get('p99_ms')} ms), {(ticks.get('setup') or {}).get('strategies')} strategies.",
            "",
        ]
    failed = [name for name, step in run["benchmarks"].items() if step["returncode"] != 0]
    if failed:
        lines.append(f"Failed or stopped in this run: {', '.join(failed)} (figures above are from earlier runs).")
    return "\n".join(lines) + "\n"


def _read(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), default=list(BENCHMARKS))
    parser.add_argument("--full", action="store_true", help="the issues' full sizes (far beyond 10 minutes here)")
    parser.add_argument("--database-prefix", default="postgres://postgres@127.0.0.1:5432/algotrader_bench")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379", help="server only; databases 9-12")
    args = parser.parse_args(argv)

    RESULTS.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    run: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "load_average_at_start": load(),
        "benchmarks": {},
    }
    for name in args.only:
        remaining = BUDGET_SECONDS - (time.monotonic() - began) if not args.full else 3 * 3600
        run["benchmarks"][name] = run_one(name, args, remaining)
    from bench.charts import main as draw_charts

    run["charts"] = [str(path.relative_to(ROOT)) for path in draw_charts([])]
    run["finished_at"] = datetime.now(UTC).isoformat()
    run["seconds"] = round(time.monotonic() - began, 1)
    (RESULTS / "run_all.json").write_text(json.dumps(run, indent=2) + "\n")
    (RESULTS / "summary.md").write_text(summary_markdown(run))
    print(f"\n{(RESULTS / 'summary.md').read_text()}")
    for name, step in run["benchmarks"].items():
        print(f"{name:16} rc={step['returncode']} {step['seconds']:6.1f} s  (load {step['load_average_before']})")
    print(f"make bench: {run['seconds']:.0f} s in all; results in {RESULTS.relative_to(ROOT)}/")
    return 0 if all(step["returncode"] == 0 for step in run["benchmarks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
