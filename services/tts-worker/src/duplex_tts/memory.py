"""Process memory figures for model accounting: resident set size, and giving freed memory back."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import os


def rss_bytes() -> int:
    """This process's resident set size (0 where /proc is not available)."""
    try:
        with open(f"/proc/{os.getpid()}/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


_CGROUP_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


@functools.cache
def memory_limit_bytes() -> int:
    """Memory this process may use: its cgroup limit (a pod's), else the host's total.

    Read once: a pod's limit does not change while it runs, and this is asked on
    every GetCapabilities and Lease renewal.
    """
    total = _meminfo_total()
    for path in _CGROUP_LIMITS:
        try:
            with open(path, encoding="ascii") as limit:
                text = limit.read().strip()
        except OSError:
            continue
        if text.isdigit() and (not total or int(text) < total):
            return int(text)
    return total


def _meminfo_total() -> int:
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


def release_freed_memory() -> None:
    """Return free heap pages to the OS (glibc ``malloc_trim``); a no-op elsewhere.

    Without it an unloaded model's memory stays in the allocator's free lists
    and the worker's RSS never shrinks after an eviction.
    """
    gc.collect()  # finished utterances sit in reference cycles that still hold the model
    libc = _libc()
    trim = getattr(libc, "malloc_trim", None) if libc is not None else None
    if trim is not None:
        trim(0)
