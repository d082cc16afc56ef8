"""A livekit-agents STT plugin: duplex's Whisper (faster-whisper, base from PyPI) per utterance.

Whisper transcribes whole utterances, so the plugin is not streaming:
AgentSession wraps it with its VAD (``DuplexVAD``) in a ``StreamAdapter``
and hands it each utterance the VAD cut. The blocking transcription runs on a
thread, never on the event loop. Transcripts are returned, never logged.
Given a ``turns.DuplexTurnDetector``, each utterance is also judged there (is
the user's turn complete?) on the same thread, after Whisper.
"""

from __future__ import annotations

import asyncio
from functools import partial

import numpy as np
import soxr
from livekit.agents import APIConnectionError, APIConnectOptions, LanguageCode, stt, utils
from livekit.agents.types import NOT_GIVEN, NotGivenOr

from duplex_livekit.turns import DuplexTurnDetector
from duplex_orchestrator.asr import SpeechToText
from duplex_orchestrator.transports.audio import to_mono
from duplex_orchestrator.vad import VAD_RATE


class DuplexSTT(stt.STT[None]):
    """Speech to text with a duplex ``SpeechToText`` (Whisper in production)."""

    def __init__(
        self,
        recognizer: SpeechToText,
        *,
        language: str = "en",
        turns: DuplexTurnDetector | None = None,
    ) -> None:
        super().__init__(capabilities=stt.STTCapabilities(streaming=False, interim_results=False))
        self._recognizer = recognizer
        self._language = language
        self._turns = turns

    @property
    def model(self) -> str:
        return "whisper"

    @property
    def provider(self) -> str:
        return "duplex"

    async def _recognize_impl(
        self,
        buffer: utils.AudioBuffer,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions,
    ) -> stt.SpeechEvent:
        ended_at = self._turns.clock() if self._turns is not None else 0.0
        frame = utils.merge_frames(buffer)
        samples = to_mono(np.frombuffer(frame.data, dtype=np.int16), frame.num_channels)
        if frame.sample_rate != VAD_RATE:  # soxr keeps int16 in, int16 out
            samples = soxr.resample(samples, frame.sample_rate, VAD_RATE)
        transcribe = (
            partial(self._turns.hear, samples, self._recognizer, ended_at)
            if self._turns is not None
            else partial(self._recognizer.transcribe, samples)
        )
        try:
            transcript = await asyncio.to_thread(transcribe)
        except Exception as exc:  # the recognizer's own failure: this turn is lost, not the session
            raise APIConnectionError(f"speech recognition failed: {exc}", retryable=False) from exc
        spoken = self._language if language is NOT_GIVEN else str(language)
        return stt.SpeechEvent(
            type=stt.SpeechEventType.FINAL_TRANSCRIPT,
            alternatives=[stt.SpeechData(language=LanguageCode(spoken), text=transcript.text)],
        )
