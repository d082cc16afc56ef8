"""Operator metrics on :9102 (names prefixed ``duplex_operator_``)."""

from __future__ import annotations

import contextlib

from prometheus_client import Counter, Gauge, Histogram

RECONCILE = Histogram(
    "duplex_operator_reconcile_seconds",
    "Reconcile duration",
    ["kind"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0),
)
PLACEMENTS = Counter("duplex_operator_placements_total", "Model copies placed and loaded")
LOAD_FAILURES = Counter("duplex_operator_load_failures_total", "LoadModel calls that failed")
EVICTIONS = Counter("duplex_operator_evictions_seen_total", "Copies the workers evicted (TTL/LRU)")
SCALINGS = Counter(
    "duplex_operator_scalings_total", "Autoscaler changes to a pool's replicas", ["direction"]
)
WANTED_REPLICAS = Gauge(
    "duplex_operator_autoscale_wanted_replicas",
    "Worker pods a pool's load asks for, before min/maxReplicas",
    ["pool_namespace", "pool"],
)
MAX_REPLICAS = Gauge(
    "duplex_operator_autoscale_max_replicas",
    "A pool's spec.autoscaling.maxReplicas",
    ["pool_namespace", "pool"],
)


def forget_pool(namespace: str, pool: str) -> None:
    """Drop a pool's autoscaling series (autoscaling turned off, or the pool deleted)."""
    for gauge in (WANTED_REPLICAS, MAX_REPLICAS):
        with contextlib.suppress(KeyError):
            gauge.remove(namespace, pool)
