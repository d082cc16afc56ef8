"""The torch profiler around part of an in-process engine bench (``--torch-profile FILE``).

Turns on duplex's phase ranges (``DUPLEX_TRACE_RANGES``), records every thread
(synthesis runs on the device thread, not the one that starts the profiler),
writes a Chrome trace (open it in Perfetto or chrome://tracing) and prints the
time spent in each duplex phase. Keep what it wraps short: every torch op is an
event. docs/profiling.md.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from duplex_tts import tracing

PHASE_PREFIXES = ("csm.", "xtts.", "cosyvoice.")


@contextmanager
def torch_profile(trace: Path | None) -> Iterator[None]:
    """Profile the block into ``trace``; nothing at all when ``trace`` is None."""
    if trace is None:
        yield
        return
    os.environ[tracing.ENV] = "1"
    activities = [ProfilerActivity.CPU]
    if torch.cuda.is_available():
        activities.append(ProfilerActivity.CUDA)
    every_thread = torch._C._profiler._ExperimentalConfig(profile_all_threads=True)
    try:
        with profile(activities=activities, experimental_config=every_thread) as prof:
            yield
    finally:
        os.environ.pop(tracing.ENV, None)
    trace.parent.mkdir(parents=True, exist_ok=True)
    prof.export_chrome_trace(str(trace))
    phases = [e for e in prof.key_averages() if e.key.startswith(PHASE_PREFIXES)]
    for event in sorted(phases, key=lambda e: -e.cpu_time_total):
        print(
            f"{event.key:<16} calls {event.count:>5}  total {event.cpu_time_total / 1000:9.1f} ms"
            f"  mean {event.cpu_time_total / max(event.count, 1) / 1000:7.2f} ms"
        )
    print(f"torch profiler trace: {trace}")
