"""One PNG chart per benchmark result in bench/results/ (matplotlib, Agg: no display).

    .venv/bin/python -m bench.charts            # every *.json found there

Each drawer reads its benchmark's JSON defensively (a figure missing from an older or
newer result leaves a gap, never a crash): the benchmarks' own files own their shape."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.axes import Axes

RESULTS = Path(__file__).resolve().parent / "results"


def _bars(ax: Axes, labels: list[str], series: dict[str, list[float | None]], *, unit: str) -> None:
    """Grouped bars, one group per label, one bar per series; missing values are gaps."""
    count = max(1, len(series))
    width = 0.8 / count
    for index, (name, values) in enumerate(series.items()):
        xs = [i + (index - (count - 1) / 2) * width for i in range(len(labels))]
        heights = [v if v is not None else 0.0 for v in values]
        bars = ax.bar(xs, heights, width, label=name)
        for bar, value in zip(bars, values, strict=True):
            if value is not None:
                ax.annotate(
                    f"{value:g}",
                    (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                )
    ax.set_xticks(range(len(labels)), labels, rotation=15, ha="right")
    ax.set_ylabel(unit)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)


def _subtitle(result: dict[str, Any]) -> str:
    machine = result.get("machine") or {}
    when = str(result.get("measured_at") or "")[:16].replace("T", " ")
    return f"{machine.get('cpus', '?')} CPUs, Python {machine.get('python', '?')}" + (f", {when} UTC" if when else "")


def api_latency(result: dict[str, Any], ax: Axes) -> str:
    rows = result.get("endpoints") or []
    labels = [f"{r['name']}\n{r.get('rate_per_second', 0):g}/s" for r in rows]
    _bars(ax, labels, {"p50": [r.get("p50_ms") for r in rows], "p99": [r.get("p99_ms") for r in rows]}, unit="ms")
    return "API latency at a fixed request rate (open loop, uvicorn, one process)"


def instrument_search(result: dict[str, Any], ax: Axes) -> str:
    api_latency(result, ax)  # the same phases' shape
    instruments = (result.get("setup") or {}).get("instruments", "?")
    return f"Instrument search over {instruments} instruments against an authenticated baseline (open loop)"


def schedule_burst(result: dict[str, Any], ax: Axes) -> str:
    labels: list[str] = []
    series: dict[str, list[float | None]] = {}
    variants = {
        "floor": "floor (all enqueued at once)",
        "slots": "slot scheduler",
        "per_strategy_clocked": "one ClockedSchedule each",
    }
    for body, sizes in (result.get("series") or {}).items():
        for size, figures in sizes.items():
            labels.append(f"N={size}\n{body}")
            for key, name in variants.items():
                for pct in ("p50", "p99"):
                    value = (figures.get(key) or {}).get(pct)
                    series.setdefault(f"{name} {pct}", []).append(value)
    ax.set_yscale("symlog", linthresh=0.1)
    _bars(ax, labels, series, unit="skew to BUY task start (s)")
    return "Market-open burst: N strategies, one BUY second"


def tick_to_order(result: dict[str, Any], ax: Axes) -> str:
    frame = (result.get("b_tick_to_order") or {}).get("frame_to_order") or {}
    base = (result.get("c_baseline") or {}).get("http_post_plus_redis_round_trip") or {}
    _bars(
        ax,
        ["tick frame -> stop-loss order\nat the broker", "baseline: one order POST\n+ one Redis round trip"],
        {"p50": [frame.get("p50_ms"), base.get("p50_ms")], "p99": [frame.get("p99_ms"), base.get("p99_ms")]},
        unit="ms",
    )
    throughput = (result.get("a_consumer_throughput") or {}).get("ticks_per_second")
    strategies = (result.get("setup") or {}).get("strategies")
    extra = f"; consumer {throughput:,} ticks/s" if isinstance(throughput, int | float) else ""
    return f"Tick to stop-loss order ({strategies} strategies){extra}"


DRAWERS: dict[str, Callable[[dict[str, Any], Axes], str]] = {
    "api_latency": api_latency,
    "instrument_search": instrument_search,
    "schedule_burst": schedule_burst,
    "tick_to_order": tick_to_order,
}


def draw(path: Path) -> Path | None:
    drawer = DRAWERS.get(path.stem)
    if drawer is None:
        return None
    result = json.loads(path.read_text())
    fig, ax = plt.subplots(figsize=(10, 5.5), layout="constrained")
    title = drawer(result, ax)
    ax.set_title(f"{title}\n{_subtitle(result)}", fontsize=10)
    out = path.with_suffix(".png")
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> list[Path]:
    paths = [Path(a) for a in (argv if argv is not None else sys.argv[1:])] or sorted(RESULTS.glob("*.json"))
    drawn = [out for path in paths if (out := draw(path)) is not None]
    for out in drawn:
        print(f"chart: {out.relative_to(RESULTS.parent.parent)}")
    return drawn


if __name__ == "__main__":
    main()
