"""TTSWorker autoscaling: how many pods a pool wants, from the load its workers' Leases report.

Pure: the spec, the pool's replica count, each worker's load and the clock go
in; a ``Decision`` comes out. The operator writes ``Decision.replicas`` into
the pool's ``spec.replicas`` (what ``kubectl scale tw`` and an HPA write
through the scale subresource), and the StatefulSet follows the spec.

- The load is the pool's total (active sessions, or queue depth) over its live
  workers; the pool wants ``ceil(load / target)`` pods, within
  ``[minReplicas, maxReplicas]``. The total does not depend on how many pods
  exist, so pods still starting do not make the pool grow again.
- Up at once. Down only after the load has asked for fewer pods for
  ``scaleDownDelaySeconds`` without a break, and only past workers holding
  nothing: a StatefulSet removes its highest ordinals first, so the pool
  shrinks to just above the highest-numbered worker that still holds a
  session or queued text (a worker with no live Lease holds nothing).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Metric = Literal["activeSessions", "queueDepth"]
_METRICS: dict[str, Metric] = {
    "targetActiveSessions": "activeSessions",
    "targetQueueDepth": "queueDepth",
}
DEFAULT_SCALE_DOWN_DELAY_S = 60.0


class InvalidAutoscaling(ValueError):
    """``spec.autoscaling`` cannot be acted on (the CRD schema rejects these too)."""


@dataclass(frozen=True)
class AutoscalingSpec:
    """``TTSWorker.spec.autoscaling``."""

    min_replicas: int
    max_replicas: int
    metric: Metric
    target: float
    """Per worker: the load one pod should carry."""
    scale_down_delay_s: float = DEFAULT_SCALE_DOWN_DELAY_S

    @staticmethod
    def from_spec(spec: Mapping[str, Any]) -> AutoscalingSpec | None:
        """The pool's autoscaling settings; None when it has none (a fixed ``replicas``)."""
        raw = spec.get("autoscaling")
        if not raw:
            return None
        targets = [key for key in _METRICS if raw.get(key) is not None]
        if len(targets) != 1:
            raise InvalidAutoscaling(
                "spec.autoscaling needs exactly one of targetActiveSessions or targetQueueDepth"
            )
        target = float(raw[targets[0]])
        low, high = int(raw.get("minReplicas", 1)), int(raw["maxReplicas"])
        if target <= 0:
            raise InvalidAutoscaling(f"spec.autoscaling.{targets[0]} must be > 0, not {target:g}")
        if not 1 <= low <= high:
            raise InvalidAutoscaling(
                f"spec.autoscaling needs 1 <= minReplicas <= maxReplicas, not {low} and {high}"
            )
        delay = float(raw.get("scaleDownDelaySeconds", DEFAULT_SCALE_DOWN_DELAY_S))
        return AutoscalingSpec(low, high, _METRICS[targets[0]], target, max(delay, 0.0))


@dataclass(frozen=True)
class WorkerLoad:
    """One worker as its Lease shows it."""

    pod: str
    alive: bool
    active_sessions: int = 0
    queue_depth: int = 0

    @property
    def holding(self) -> bool:
        """Whether removing this pod now would cut someone off."""
        return self.alive and (self.active_sessions > 0 or self.queue_depth > 0)

    def load(self, metric: Metric) -> int:
        if not self.alive:
            return 0
        return self.active_sessions if metric == "activeSessions" else self.queue_depth


@dataclass(frozen=True)
class Decision:
    replicas: int
    """What the pool's ``spec.replicas`` should be now."""
    wanted: int
    """What the load asks for, before ``min``/``maxReplicas``."""
    load: int
    pending_since: datetime | None
    """Since when the load has asked for fewer pods (a scale-down waiting out its delay)."""
    held_by: tuple[str, ...] = field(default=())
    """Busy workers that keep the pool from shrinking further."""

    def reason(self, current: int, spec: AutoscalingSpec) -> str:
        """An Event message for a change from ``current``."""
        what = "active sessions" if spec.metric == "activeSessions" else "queued segments"
        text = f"replicas {current} -> {self.replicas}: {self.load} {what}, target {spec.target:g}"
        if self.held_by:
            text += f"; {', '.join(self.held_by)} still busy"
        return text


def ordinal(pod: str, statefulset: str) -> int | None:
    """The StatefulSet ordinal of ``pod`` (``<statefulset>-<n>``); None for another pod."""
    match = re.fullmatch(re.escape(statefulset) + r"-(\d+)", pod)
    return int(match.group(1)) if match else None


def decide(
    spec: AutoscalingSpec,
    current: int,
    workers: Sequence[WorkerLoad],
    *,
    statefulset: str,
    now: datetime,
    pending_since: datetime | None,
) -> Decision:
    """How many pods the pool should have now (see the module docstring for the rules)."""
    load = sum(w.load(spec.metric) for w in workers)
    wanted = math.ceil(load / spec.target)
    desired = min(max(wanted, spec.min_replicas), spec.max_replicas)
    if desired >= current:
        return Decision(desired, wanted, load, None)
    # Fewer pods wanted. Bounds the user lowered apply at once; the load's wish waits.
    floor = max(desired, min(current, spec.max_replicas))
    if floor == current:
        pending_since = pending_since or now
        if (now - pending_since).total_seconds() < spec.scale_down_delay_s:
            return Decision(current, wanted, load, pending_since)
        floor = desired
    by_ordinal = {ordinal(w.pod, statefulset): w for w in workers}
    replicas, held_by = current, []
    while replicas > floor:
        worker = by_ordinal.get(replicas - 1)
        if worker is not None and worker.holding:
            held_by.append(worker.pod)
            break
        replicas -= 1
    still_pending = pending_since if replicas > desired else None
    return Decision(replicas, wanted, load, still_pending, tuple(held_by))
