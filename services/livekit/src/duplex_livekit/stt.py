"""A livekit-agents STT plugin: duplex's Whisper (faster-whisper, base from PyPI) per utterance.

Whisper transcribes whole utterances, so the plugin is not streaming:
AgentSession wraps it with its VAD (``DuplexVAD``) in a ``StreamAdapter``
and hands it each utterance the VAD cut. The blocking transcription runs on a
thread, never on the event loop. Transcripts are returned, never logged.
"""

from __future__ import annotations

import asyncio

import numpy as np
import soxr
from livekit.agents import APIConnectionError, APIConnectOptions, LanguageCode, stt, utils
from livekit.agents.types import NOT_GIVEN, NotGivenOr

from duplex_orchestrator.asr import SpeechToText
from duplex_orchestrator.transports.audio import to_mono
from duplex_orchestrator.vad import VAD_RATE


class DuplexSTT(stt.STT[None]):
    """Speech to text with a duplex ``SpeechToText`` (Whisper in production)."""

    def __init__(self, recognizer: SpeechToText, *, language: str = "en") -> None:
        super().__init__(capabilities=stt.STTCapabilities(streaming=False, interim_results=False))
        self._recognizer = recognizer
        self._language = language

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
        frame = utils.merge_frames(buffer)
        samples = to_mono(np.frombuffer(frame.data, dtype=np.int16), frame.num_channels)
        if frame.sample_rate != VAD_RATE:  # soxr keeps int16 in, int16 out
            samples = soxr.resample(samples, frame.sample_rate, VAD_RATE)
        try:
            transcript = await asyncio.to_thread(self._recognizer.transcribe, samples)
        except Exception as exc:  # the recognizer's own failure: this turn is lost, not the session
            raise APIConnectionError(f"speech recognition failed: {exc}", retryable=False) from exc
        spoken = self._language if language is NOT_GIVEN else str(language)
        return stt.SpeechEvent(
            type=stt.SpeechEventType.FINAL_TRANSCRIPT,
            alternatives=[stt.SpeechData(language=LanguageCode(spoken), text=transcript.text)],
        )
