"""For ONNX engines: session options that share the cores, and an arena that can shrink.

ONNX Runtime's pool threads spin between operators by default, waiting for the
next one. A worker's synthesis threads, another session's synthesis and the
orchestrator's Whisper share a few cores, so ``cpu_session_options`` turns
spinning off: measured on two cores with Whisper transcribing beside Piper,
both finished ~10-15 % sooner, and Piper alone was no slower.

ONNX Runtime keeps the arena its largest run needed and never returns it, so a
worker that once spoke a long clause in two threads at once holds that peak
(hundreds of MB) for good. Runs made inside ``ArenaSession.shrinking()`` free
the arena's unused blocks when they finish; an engine's ``release_memory``
does one tiny run that way. Runs elsewhere keep the arena, and its speed.
``onnxruntime`` is imported only by the engines that use this.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from duplex_protocol.cores import quota_limited_cores

_SHRINK = "memory.enable_memory_arena_shrinkage"


def cpu_session_options(threads: int = 0) -> Any:
    """``onnxruntime.SessionOptions`` whose threads sleep, not spin, when idle.

    ``threads`` > 0 caps the intra-op threads; 0 leaves onnxruntime's default
    (one per physical core of the machine), capped by a container's CPU limit:
    more threads than the quota grants are throttled mid-inference.
    """
    import onnxruntime as ort

    threads = threads or quota_limited_cores() or 0
    options = ort.SessionOptions()
    if threads > 0:
        options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return options


class ArenaSession:
    """Wraps an ``onnxruntime.InferenceSession``; everything else passes through."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self._local = threading.local()  # only the releasing thread's run shrinks

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)

    def run(self, output_names: Any, input_feed: Any, run_options: Any = None) -> Any:
        if run_options is None and getattr(self._local, "shrink", False):
            import onnxruntime as ort

            run_options = ort.RunOptions()
            run_options.add_run_config_entry(_SHRINK, "cpu:0")
        return self._session.run(output_names, input_feed, run_options)

    @contextlib.contextmanager
    def shrinking(self) -> Iterator[None]:
        """Runs on this thread inside the block free the arena's unused blocks."""
        self._local.shrink = True
        try:
            yield
        finally:
            self._local.shrink = False
