"""VAD debouncing (pure) and webrtcvad on generated signals."""

import numpy as np
import pytest

from duplex_orchestrator.silero import SileroModel
from duplex_orchestrator.vad import SpeechDetector, Vad, VadEvent, WebRtcClassifier, frame_dbfs
from tests.support.fake_ears import voiced

LOUD = -20.0


def run(detector: SpeechDetector, pattern: str, dbfs: float = LOUD) -> list[tuple[int, VadEvent]]:
    events = []
    for i, ch in enumerate(pattern):
        event = detector.push(ch == "S", dbfs)
        if event:
            events.append((i, event))
    return events


def test_onset_needs_a_run_of_speech_frames() -> None:
    detector = SpeechDetector(onset_frames=4, end_frames=3)
    assert run(detector, "SSS.SSS.S.S") == []
    assert run(SpeechDetector(onset_frames=4, end_frames=3), "..SSSS") == [
        (5, VadEvent.SPEECH_START)
    ]


def test_end_needs_a_run_of_silence_and_short_gaps_do_not_end_a_turn() -> None:
    detector = SpeechDetector(onset_frames=2, end_frames=3)
    events = run(detector, "SS..SS..S...")
    assert events == [(1, VadEvent.SPEECH_START), (11, VadEvent.SPEECH_END)]


def test_a_short_silence_inside_speech_is_a_pause_once() -> None:
    detector = SpeechDetector(onset_frames=2, end_frames=5, pause_frames=2)
    events = run(detector, "SS..S...S.....")
    assert events == [
        (1, VadEvent.SPEECH_START),
        (3, VadEvent.SPEECH_PAUSE),
        (6, VadEvent.SPEECH_PAUSE),
        (10, VadEvent.SPEECH_PAUSE),
        (13, VadEvent.SPEECH_END),
    ]


def test_the_first_frames_of_a_silence_are_a_gap_before_its_pause() -> None:
    detector = SpeechDetector(onset_frames=2, end_frames=6, pause_frames=4, gap_frames=2)
    events = run(detector, "SS.S..S.......")
    assert events == [
        (1, VadEvent.SPEECH_START),
        (5, VadEvent.SPEECH_GAP),
        (8, VadEvent.SPEECH_GAP),
        (10, VadEvent.SPEECH_PAUSE),
        (12, VadEvent.SPEECH_END),
    ]
    # A busy gap: a second, later one in the same silence.
    detector = SpeechDetector(2, end_frames=8, pause_frames=6, gap_frames=2, busy_gap_frames=4)
    assert run(detector, "SS.......") == [
        (1, VadEvent.SPEECH_START),
        (3, VadEvent.SPEECH_GAP),
        (5, VadEvent.SPEECH_GAP),
        (7, VadEvent.SPEECH_PAUSE),
    ]
    # gap_frames 0 (the default): no gaps at all.
    assert VadEvent.SPEECH_GAP not in [e for _, e in run(SpeechDetector(2, 6, 4), "SS..S......")]


def test_faint_frames_never_start_speech() -> None:
    detector = SpeechDetector(onset_frames=2, min_dbfs=-50)
    assert run(detector, "SSSSSSSS", dbfs=-60.0) == []


def tone(seconds: float, level: float, freq: float = 180.0) -> np.ndarray:
    t = np.arange(int(seconds * 16000)) / 16000
    voiced = sum(np.sin(2 * np.pi * freq * h * t) / h for h in range(1, 10))
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * 4 * t)  # syllable-like modulation
    return (level * 32767 * voiced * envelope / 3).astype(np.int16)


def frames(signal: np.ndarray) -> list[np.ndarray]:
    return [signal[i : i + 320] for i in range(0, len(signal) - 319, 320)]


def test_vad_returns_the_utterance_with_preroll_at_the_end_of_speech() -> None:
    vad = Vad(
        WebRtcClassifier(2),
        detector=SpeechDetector(onset_frames=4, end_frames=10, pause_frames=6),
        preroll_frames=5,
    )
    signal = np.concatenate([np.zeros(16000, np.int16), tone(1.0, 0.5), np.zeros(16000, np.int16)])
    results = [vad.push(f) for f in frames(signal)]
    events = [(i, r.event) for i, r in enumerate(results) if r.event]
    kinds = [e for _, e in events]
    assert kinds == [VadEvent.SPEECH_START, VadEvent.SPEECH_PAUSE, VadEvent.SPEECH_END]
    pause = results[events[1][0]].utterance
    utterance = results[events[2][0]].utterance
    assert pause is not None
    assert results[events[2][0]].by_silence
    assert utterance is not None
    assert 1.0 <= len(utterance) / 16000 <= 1.6
    # The speculative snapshot is the utterance without its trailing silence.
    assert np.array_equal(utterance[: len(pause)], pause)
    assert len(utterance) - len(pause) == (10 - 6) * 320


@pytest.mark.parametrize("level", [0.0, 0.0005])
def test_silence_and_a_faint_noise_step_are_not_speech(level: float) -> None:
    vad = Vad()
    rng = np.random.default_rng(1)
    noise = (rng.standard_normal(16000 * 2) * level * 32767).astype(np.int16)
    assert all(vad.push(f).event is None for f in frames(noise))


def test_a_long_monologue_is_cut_into_utterances() -> None:
    vad = Vad(detector=SpeechDetector(onset_frames=2, end_frames=50), max_utterance_s=1.0)
    results = [vad.push(f) for f in frames(tone(2.5, 0.5))]
    ends = [r for r in results if r.event is VadEvent.SPEECH_END]
    assert len(ends) >= 2
    assert not ends[0].by_silence
    assert all(r.utterance is not None and len(r.utterance) <= 16000 + 320 * 20 for r in ends)


def test_a_continued_turn_counts_its_earlier_audio_toward_the_cut() -> None:
    vad = Vad(detector=SpeechDetector(onset_frames=2, end_frames=50), max_utterance_s=1.0)
    signal = frames(tone(0.3, 0.5))
    for f in signal:
        vad.push(f)
    earlier = vad.end_turn()  # judged complete at a pause ...
    assert len(earlier) > 0
    results = []
    for f in frames(tone(1.0, 0.5)):
        results.append(vad.push(f))
        if results[-1].event is VadEvent.SPEECH_START:  # ... then the user went on
            vad.prepend(np.concatenate([earlier, earlier]))
    cut = [r for r in results if r.event is VadEvent.SPEECH_END]
    assert cut
    assert not cut[0].by_silence
    assert cut[0].utterance is not None
    assert len(cut[0].utterance) <= 16000 + 320 * 20


def test_a_turn_ended_at_a_pause_leaves_none_of_its_audio_in_the_next_pre_roll() -> None:
    vad = Vad(detector=SpeechDetector(onset_frames=2, end_frames=50))
    for f in frames(tone(0.3, 0.5)):
        vad.push(f)
    vad.end_turn()
    pause = np.zeros(320 * 3, np.int16)  # 60 ms, then the user goes on
    results = [vad.push(f) for f in frames(np.concatenate([pause, tone(0.5, 0.5)]))]
    assert any(r.event is VadEvent.SPEECH_START for r in results)
    cut = vad.end_turn()
    # The pause and the new speech, nothing older.
    assert len(cut) == (3 + len(frames(tone(0.5, 0.5)))) * 320


def test_frame_dbfs() -> None:
    assert frame_dbfs(np.zeros(320, np.int16)) == float("-inf")
    assert frame_dbfs(np.full(320, 32767, np.int16)) == pytest.approx(0, abs=0.01)


def test_feed_frames_any_chunking_alike_and_keeps_a_partial_frame_for_later() -> None:
    audio = np.concatenate([np.zeros(4000, np.int16), voiced(1.0), np.zeros(12000, np.int16)])
    whole = [r.event for _, r in Vad().feed(audio)]
    vad, chunked = Vad(), []
    for start in range(0, len(audio), 333):  # chunks that never line up with 20 ms
        chunked += [r.event for _, r in vad.feed(audio[start : start + 333])]
    assert chunked == whole
    assert len(whole) == len(audio) // 320
    assert [e for e in whole if e] == [
        VadEvent.SPEECH_START,
        VadEvent.SPEECH_PAUSE,
        VadEvent.SPEECH_END,
    ]


class _ScriptedSilero(SileroModel):
    """Silero's probabilities from a script, one per 512-sample chunk."""

    def __init__(self, probabilities: list[float]) -> None:
        self.threshold = 0.5
        self._script = iter(probabilities)
        self.windows: list[int] = []

    def probability(
        self, chunk: np.ndarray, state: tuple[np.ndarray, np.ndarray]
    ) -> tuple[float, tuple[np.ndarray, np.ndarray]]:
        self.windows.append(len(chunk))
        return next(self._script), state


def test_silero_speech_starts_at_the_threshold_and_lasts_to_0_15_below_it() -> None:
    model = _ScriptedSilero([0.2, 0.45, 0.55, 0.40, 0.36, 0.34, 0.49, 0.2])
    stream = model.classifier()
    heard = []
    for f in frames(np.zeros(320 * 13, np.int16)):  # 8 whole chunks
        before = len(model.windows)
        speech = stream.is_speech(f)
        if len(model.windows) > before:  # a new chunk was judged
            heard.append(speech)
    assert heard == [False, False, True, True, True, False, False, False]
    assert set(model.windows) == {64 + 512}  # each chunk with its 64 samples of context
