"""The CPUs this process may use: what the services size their thread pools to.

``os.cpu_count()`` is the machine's count. In a container it ignores the pod's
CPU limit (its cgroup's quota) and its cpuset, so a pool sized by it on a
64-core node under a 2-CPU limit runs 32 times the threads the quota lets run,
and each pass is throttled mid-way. As Go's automaxprocs does, the usable
count is the smallest of the affinity mask and the quota (cgroup v2
``cpu.max``, v1 ``cpu.cfs_quota_us`` over ``cpu.cfs_period_us``), rounded
down, at least 1. No quota (Kubernetes without a CPU limit): the mask.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
OWN_CGROUP = Path("/proc/self/cgroup")
_V1_DIRS = ("cpu", "cpu,cpuacct", "cpuacct,cpu")


def quota_cores(quota: str, period: str = "") -> float | None:
    """CPUs a CFS quota grants: cgroup v2's ``cpu.max`` line ("200000 100000"; "max
    100000": none), or v1's quota and period ("-1": none). None when unlimited or
    unreadable."""
    fields = quota.split()
    if not period and len(fields) == 2:
        fields, period = fields[:1], fields[1]
    try:
        granted, length = int(fields[0]), int(period)
    except (IndexError, ValueError):
        return None  # "max": unlimited
    if granted <= 0 or length <= 0:
        return None  # v1's -1: unlimited
    return granted / length


def cgroup_quota(root: Path = CGROUP_ROOT, own: Path = OWN_CGROUP) -> float | None:
    """The CPU quota of this process's cgroup: the mount's root, as a container with its
    own cgroup namespace sees it, else the path ``own`` (``/proc/self/cgroup``) names
    under it (a container sharing the host's, cgroup v2)."""
    for folder in (root, *_v2_folder(root, own)):
        try:
            return quota_cores((folder / "cpu.max").read_text())
        except OSError:
            continue
    for name in _V1_DIRS:
        folder = root / name
        try:
            quota = (folder / "cpu.cfs_quota_us").read_text()
            period = (folder / "cpu.cfs_period_us").read_text()
        except OSError:
            continue
        return quota_cores(quota.strip(), period.strip())
    return None


def _v2_folder(root: Path, own: Path) -> list[Path]:
    """This process's cgroup v2 folder under ``root``, from its "0::/path" line."""
    try:
        lines = own.read_text().splitlines()
    except OSError:
        return []
    paths = [line[3:].strip("/") for line in lines if line.startswith("0::")]
    return [root / paths[0]] if paths and paths[0] else []


def _affinity() -> int:
    """The CPUs this process may be scheduled on (its cpuset)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def quota_limited_cores(root: Path = CGROUP_ROOT) -> int | None:
    """The CPUs a container's quota grants (rounded down: a pool one thread past the
    quota is throttled, at least 1) when fewer than the affinity mask's; else None,
    and a library's own default (onnxruntime's: one thread per physical core) stands."""
    quota = cgroup_quota(root)
    if quota is None:
        return None
    granted = max(1, math.floor(quota))
    return granted if granted < _affinity() else None


def usable_cores(root: Path = CGROUP_ROOT) -> int:
    """The CPUs this process may keep busy: its affinity mask, capped by its cgroup's
    quota."""
    return quota_limited_cores(root) or _affinity()


def cap_torch_threads(root: Path = CGROUP_ROOT) -> int | None:
    """torch's intra-op threads (by default one per physical core of the machine) capped
    by a container's CPU limit, once an engine has imported torch (the services never
    import it themselves); the cap set, or None."""
    torch = sys.modules.get("torch")
    cores = quota_limited_cores(root)
    if torch is None or cores is None or torch.get_num_threads() <= cores:
        return None
    torch.set_num_threads(cores)
    return cores


__all__ = [
    "CGROUP_ROOT",
    "OWN_CGROUP",
    "cap_torch_threads",
    "cgroup_quota",
    "quota_cores",
    "quota_limited_cores",
    "usable_cores",
]
