"""Routing decision time at scale: ``make bench`` (or ``python -m tests.bench.bench_routing``).

A registry snapshot of 1,000 workers x 200 models (each worker serves all 200
and holds 10 resident), then p50/p95/p99 of one ``route()`` call for random
models, resident-somewhere and resident-nowhere alike. Writes
``bench-results/routing.json``. Target: p99 < 1 ms.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

from duplex_orchestrator.routing.policy import RouteRequest, WorkerView, route
from tests.bench.bench_worker import publish, summary
from tests.support.worker import ROOT


def snapshot(workers: int, models: int, resident: int, rng: random.Random) -> list[WorkerView]:
    ids = [f"model-{i:03d}" for i in range(models)]
    catalog = frozenset(ids)
    languages: dict[str, tuple[str, ...]] = {m: ("en-US",) for m in ids}
    return [
        WorkerView(
            worker_id=f"w{i:04d}",
            endpoint=f"10.0.{i // 250}.{i % 250}:7001",
            models=catalog,
            resident=frozenset(rng.sample(ids, resident)),
            languages=languages,
            queue_depth=rng.randrange(8),
            active_sessions=rng.randrange(64),
            max_sessions=64,
            p50_first_audio_ms=rng.uniform(40, 200),
        )
        for i in range(workers)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--workers", type=int, default=1000)
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--decisions", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results" / "routing.json")
    args = parser.parse_args()
    rng = random.Random(7)
    table = snapshot(args.workers, args.models, 10, rng)
    requests = [
        RouteRequest(
            f"model-{rng.randrange(args.models):03d}",
            language="en-US",
            fallback_model=f"model-{rng.randrange(args.models):03d}",
        )
        for _ in range(args.decisions)
    ]
    timings = []
    for request in requests:
        started = time.perf_counter()
        route(table, request)
        timings.append((time.perf_counter() - started) * 1000)
    stats = summary(timings)
    stats["p99"] = sorted(timings)[int(0.99 * len(timings)) - 1]
    results = {f"route_ms@{args.workers}x{args.models}": stats}

    def render(res: dict[str, dict[str, float]]) -> str:
        return "\n".join(
            f"{name}: p50 {f['p50']:.3f}  p95 {f['p95']:.3f}  p99 {f['p99']:.3f}  "
            f"max {f['max']:.3f} ms  (target p99 < 1: {'met' if f['p99'] < 1 else 'MISSED'})"
            for name, f in res.items()
        )

    publish(results, args.out, render)


if __name__ == "__main__":
    main()
