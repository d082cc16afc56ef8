"""Operator metrics on :9102 (names prefixed ``duplex_operator_``)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

RECONCILE = Histogram(
    "duplex_operator_reconcile_seconds",
    "Reconcile duration",
    ["kind"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0),
)
PLACEMENTS = Counter("duplex_operator_placements_total", "Model copies placed and loaded")
LOAD_FAILURES = Counter("duplex_operator_load_failures_total", "LoadModel calls that failed")
EVICTIONS = Counter("duplex_operator_evictions_seen_total", "Copies the workers evicted (TTL/LRU)")
