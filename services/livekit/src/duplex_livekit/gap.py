"""Work started at the gap, the first silence inside speech: Whisper and Smart Turn
on the turn so far, each on a thread of its own, claimed at the pause if no speech
came between (``turns.DuplexTurnDetector.speculate``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TypeVar

from duplex_orchestrator.asr import Transcript

log = logging.getLogger(__name__)
_T = TypeVar("_T")


@dataclass(eq=False)
class Speculation:
    """Whisper on the turn as it stood at a gap; it speaks for the utterance while no
    speech has followed (``cut_at`` after speech last began), and for the turn while
    the utterances before it in the turn are still ``prior`` samples long."""

    cut_at: float
    prior: int
    transcript: Future[Transcript]
    turn_model: Future[float] | None = None
    """Smart Turn on the turn as it will stand at the pause (None: not asked)."""

    def claim(self, speech_at: float, prior: int) -> tuple[Transcript, Future[float] | None] | None:
        """Blocking: the transcript (and Smart Turn's answer to come), if no speech began
        since the audio was cut (``speech_at``: when it last did) and it heard the
        ``prior`` samples of the turn before this utterance (None: stale, or failed)."""
        if self.cut_at <= speech_at or self.prior != prior:
            return None  # the turn was judged over, or going on, after the gap
        try:
            heard = self.transcript.result()
        except Exception:
            log.exception("speculative transcription failed", extra={"event": "asr_error"})
            return None
        return None if heard.abandoned else (heard, self.turn_model)


def in_thread(name: str, work: Callable[[], _T]) -> Future[_T]:
    """``work`` on a daemon thread of its own; its result, or its exception, in a future."""
    done: Future[_T] = Future()

    def run() -> None:
        try:
            done.set_result(work())
        except Exception as exc:  # the pause does the work again
            done.set_exception(exc)

    threading.Thread(target=run, name=name, daemon=True).start()
    return done


def answer(asked: Future[float] | None, event: str) -> float | None:
    """Blocking: the answer of work started at the gap (None: none, or it failed)."""
    if asked is None:
        return None
    try:
        return asked.result()
    except Exception:
        log.exception("work started at the gap failed", extra={"event": event})
        return None
