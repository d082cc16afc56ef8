"""A livekit-agents VAD plugin: duplex's detector (onset, end of turn, utterance).

The room's frames (any rate, any channels) are mixed to mono, resampled to
16 kHz and cut into 20 ms frames; duplex's ``Vad`` (webrtcvad or Silero, as
configured) decides speech with the
same debouncing as the WebSocket and WebRTC paths (an onset needs
``onset_ms`` of speech above an energy floor, a turn ends after ``end_ms`` of
silence). Each frame gives an ``INFERENCE_DONE`` event (AgentSession's
barge-in reads its speech duration); onsets and ends give ``START_OF_SPEECH``
and ``END_OF_SPEECH``, the latter with the utterance for speech recognition;
``on_speech`` is told when speech begins, at an onset (True) or again after a
silence inside the utterance (``turns.DuplexTurnDetector.speech_started``),
``on_gap`` of the first ``gap_ms`` of silence inside speech, with the utterance
so far (``turns.DuplexTurnDetector.speculate``). ``end_utterance`` ends the
utterance in progress after the frames received so far, in every stream
(duplex's ``end_turn``: a push-to-talk button released), instead of after its
silence.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable

import numpy as np
from livekit import rtc
from livekit.agents import vad

from duplex_orchestrator.transports.audio import To16k, to_mono
from duplex_orchestrator.vad import (
    VAD_FRAME_SAMPLES,
    VAD_RATE,
    FrameClassifier,
    SpeechDetector,
    Vad,
    VadEvent,
    VadResult,
    WebRtcClassifier,
)

FRAME_S = VAD_FRAME_SAMPLES / VAD_RATE
SETTLING_FRAMES = 5
"""After an utterance ended by the client, 100 ms in which speech is its last sound
(the resampler's and the speech model's context hold some), not a new onset."""


class DuplexVAD(vad.VAD):
    def __init__(
        self,
        *,
        classifier: Callable[[], FrameClassifier] = WebRtcClassifier,
        model: str = "webrtcvad",
        onset_ms: int = 80,
        end_ms: int = 500,
        on_speech: Callable[[bool], None] | None = None,
        gap_ms: int = 0,
        on_gap: Callable[[np.ndarray], None] | None = None,
    ) -> None:
        super().__init__(capabilities=vad.VADCapabilities(update_interval=FRAME_S))
        self.classifier = classifier
        self._model = model
        self.onset_frames = max(1, onset_ms // 20)
        self.end_frames = max(2, end_ms // 20)
        self.on_speech = on_speech
        self.gap_frames = gap_ms // 20 if 0 < gap_ms // 20 < self.end_frames else 0
        self.on_gap = on_gap
        self._streams: weakref.WeakSet[DuplexVADStream] = weakref.WeakSet()

    @property
    def model(self) -> str:
        return self._model

    @property
    def provider(self) -> str:
        return "duplex"

    def detector(self) -> Vad:
        return Vad(
            self.classifier(),
            SpeechDetector(
                onset_frames=self.onset_frames,
                end_frames=self.end_frames,
                gap_frames=self.gap_frames,
            ),
        )

    def stream(self) -> DuplexVADStream:
        stream = DuplexVADStream(self)
        self._streams.add(stream)
        return stream

    def end_utterance(self) -> bool:
        """End the utterance in progress after the frames pushed so far, in every stream,
        not after its silence. Whether any stream was in one."""
        speaking = False
        for stream in list(self._streams):
            speaking = stream.end_utterance() or speaking
        return speaking


class DuplexVADStream(vad.VADStream):
    def __init__(self, owner: DuplexVAD) -> None:
        self._owner = owner
        self._speaking = False
        self._pushed = 0
        self._end_after: int | None = None
        """End the utterance once this many frames pushed have been heard."""
        super().__init__(owner)

    def push_frame(self, frame: rtc.AudioFrame) -> None:
        self._pushed += 1
        super().push_frame(frame)

    def end_utterance(self) -> bool:
        """End the utterance in progress after the frames pushed so far (those still on
        their way are its last ones, not speech after it); whether there is one."""
        self._end_after = self._pushed
        return self._speaking

    async def _main_task(self) -> None:
        detector = self._owner.detector()
        resample: To16k | None = None
        frames = 0
        speech_frames = silence_frames = 0
        began = 0  # the detector's count of speech beginnings (``SpeechDetector.pauses``)
        heard = 0  # frames taken from the input
        settling = 0  # frames left in which speech is the ended utterance's last sound
        async for item in self._input_ch:
            if not isinstance(item, rtc.AudioFrame):  # flush: a hard segment boundary
                detector, speech_frames, silence_frames = self._owner.detector(), 0, 0
                began = 0
                continue
            if self._end_after is not None and heard >= self._end_after:
                self._end_after = None
                if detector.detector.in_speech:
                    silent = detector.detector.silent_frames
                    self._send_end(detector.end_turn(), silent, frames)
                    began, speech_frames, silence_frames = detector.detector.pauses, 0, 0
                    settling = SETTLING_FRAMES
            heard += 1
            if resample is None or resample.rate != item.sample_rate:
                resample = To16k(item.sample_rate)
            samples = to_mono(np.frombuffer(item.data, dtype=np.int16), item.num_channels)
            started = time.perf_counter()
            for frame, result in detector.feed(resample(samples)):
                took = time.perf_counter() - started  # this frame's detection (and resampling)
                frames += 1
                if settling > 0:
                    settling -= 1
                    if result.event is VadEvent.SPEECH_START:  # its tail: no new utterance
                        detector.end_turn()
                        began, result = detector.detector.pauses, VadResult(None)
                speaking = self._speaking = detector.detector.in_speech
                if detector.detector.pauses != began:
                    began = detector.detector.pauses
                    if self._owner.on_speech is not None:
                        self._owner.on_speech(result.event is VadEvent.SPEECH_START)
                if result.event is VadEvent.SPEECH_START:
                    speech_frames, silence_frames = self._owner.onset_frames, 0
                elif speaking:
                    speech_frames += 1
                else:
                    silence_frames += 1
                index, stamp = frames * VAD_FRAME_SAMPLES, frames * FRAME_S
                self._event_ch.send_nowait(
                    vad.VADEvent(
                        type=vad.VADEventType.INFERENCE_DONE,
                        speech_duration=speech_frames * FRAME_S if speaking else 0.0,
                        silence_duration=0.0 if speaking else silence_frames * FRAME_S,
                        frames=[_frame(frame)],
                        probability=1.0 if speaking else 0.0,
                        inference_duration=took,
                        speaking=speaking,
                        raw_accumulated_silence=detector.detector.silent_frames * FRAME_S,
                        raw_accumulated_speech=speech_frames * FRAME_S if speaking else 0.0,
                        samples_index=index,
                        timestamp=stamp,
                    )
                )
                if result.event is VadEvent.SPEECH_START:
                    self._event_ch.send_nowait(
                        vad.VADEvent(
                            type=vad.VADEventType.START_OF_SPEECH,
                            speech_duration=speech_frames * FRAME_S,
                            silence_duration=0.0,
                            speaking=True,
                            samples_index=index,
                            timestamp=stamp,
                        )
                    )
                elif result.event is VadEvent.SPEECH_GAP and result.utterance is not None:
                    if self._owner.on_gap is not None:
                        self._owner.on_gap(result.utterance)
                elif result.event is VadEvent.SPEECH_END and result.utterance is not None:
                    silence_frames = self._owner.end_frames if result.by_silence else 0
                    self._send_end(result.utterance, silence_frames, frames)
                    speech_frames = 0
                started = time.perf_counter()

    def _send_end(self, utterance: np.ndarray, silence_frames: int, frames: int) -> None:
        self._speaking = False
        self._event_ch.send_nowait(
            vad.VADEvent(
                type=vad.VADEventType.END_OF_SPEECH,
                speech_duration=0.0,
                silence_duration=silence_frames * FRAME_S,
                frames=[_frame(utterance)],
                speaking=False,
                samples_index=frames * VAD_FRAME_SAMPLES,
                timestamp=frames * FRAME_S,
            )
        )


def _frame(samples: np.ndarray) -> rtc.AudioFrame:
    return rtc.AudioFrame(
        data=samples.astype("<i2").tobytes(),
        sample_rate=VAD_RATE,
        num_channels=1,
        samples_per_channel=len(samples),
    )
