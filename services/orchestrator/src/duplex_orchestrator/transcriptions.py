"""A session's transcriptions: Whisper in a thread, the latest one superseding the rest.

Speculative (``partial``) transcripts, started at a gap in the speech
(``judging.TurnJudge.gap``), are shown to the client as they land while the
turn is still being judged; the final one at the full silence is not (the
session sends it with the turn's figures).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import numpy as np

from duplex_orchestrator.asr import Transcript, Wanted
from duplex_orchestrator.events import Asr, Event
from duplex_orchestrator.session_parts import Services


class Transcriptions:
    """Starts a session's transcriptions; each one supersedes those started before it.

    ``judging`` says whether a turn is still being judged (a partial transcript
    is worth showing); ``emit`` sends an event to the client.
    """

    def __init__(
        self,
        services: Services,
        emit: Callable[[Event], Awaitable[None]],
        judging: Callable[[], bool],
    ) -> None:
        self._services = services
        self._emit = emit
        self._judging = judging
        self._generation = 0

    def partial(self, utterance: np.ndarray, wanted: Wanted) -> asyncio.Task[Transcript]:
        """A speculative transcript; it stops early once ``wanted`` says its words
        can no longer be the turn's."""
        return self.latest(utterance, partial=True, wanted=wanted)

    def latest(
        self, utterance: np.ndarray, *, partial: bool = False, wanted: Wanted | None = None
    ) -> asyncio.Task[Transcript]:
        """Start transcribing; it never waits for an earlier transcription of this
        session. A ``partial`` result is shown to the client as it lands, unless the
        turn has ended or another transcription started meanwhile."""
        self._generation += 1
        generation = self._generation

        async def run() -> Transcript:
            transcriber = self._services.transcriber
            # A judged (speculative) transcript says where its last word lies, when
            # that can change the verdict; the final one at the full silence need not.
            align = self._services.end_of_turn.wants_last_word if partial else None
            transcript = await asyncio.to_thread(transcriber.transcribe, utterance, wanted, align)
            if partial and self._judging() and generation == self._generation and transcript.text:
                await self._emit(Asr(transcript.text, final=False))
            return transcript

        return asyncio.create_task(run())
