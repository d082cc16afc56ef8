"""For ONNX engines: an InferenceSession whose CPU arena can be shrunk on request.

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

_SHRINK = "memory.enable_memory_arena_shrinkage"


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
