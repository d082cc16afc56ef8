"""Named ranges around the synthesis phases of torch engines, for profilers; free when off.

With ``DUPLEX_TRACE_RANGES=1`` in a worker's environment, each ``phase(name)`` an
engine marks (CSM: ``csm.generate``, ``csm.decode``; XTTS: ``xtts.clone``) is a
``torch.profiler.record_function`` range, seen in torch profiler traces, and on
CUDA also an NVTX range, seen in Nsight Systems (``nsys profile -t cuda,nvtx``).
Off (the default), a phase is a ``nullcontext`` and torch is not touched.
docs/profiling.md says how to record either.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

ENV = "DUPLEX_TRACE_RANGES"


def enabled() -> bool:
    return os.environ.get(ENV, "") not in ("", "0")


@contextmanager
def _ranged(torch: Any, name: str) -> Iterator[None]:
    nvtx = bool(torch.cuda.is_available())
    with torch.profiler.record_function(name):
        if nvtx:
            torch.cuda.nvtx.range_push(name)
        try:
            yield
        finally:
            if nvtx:
                torch.cuda.nvtx.range_pop()


def phase(name: str) -> AbstractContextManager[None]:
    """A profiler range named ``name`` when tracing is on, else nothing."""
    # The core never imports torch (CPU images have none): the torch engines that
    # mark phases have loaded it, and without it there is nothing to profile.
    torch = sys.modules.get("torch")
    return _ranged(torch, name) if torch is not None and enabled() else nullcontext()
