"""VAD bench: webrtcvad vs Silero VAD on the same speech and the same noises.

Speech: the ASR bench's questions in every English CPU voice, clean, quiet
(-20 dB) and over low music. For each: was it heard, how long after the first
speech frame the onset came (a barge-in waits for it), how long after the last
speech frame the silence that ends a turn began (it adds to voice-to-voice),
and whether one question was split into two turns. Noise: coughs, keyboard
typing, music, hiss and a door knock, alone: every onset there is a false
barge-in. Both classifiers go through duplex's own ``Vad`` and
``SpeechDetector`` (80 ms onset, 500 ms end), frame by frame as a session
does; the cost per 20 ms frame is timed too.

    PYTHONPATH=. .venv/bin/python -m tests.bench.bench_vad
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from duplex_orchestrator.silero import SileroModel
from duplex_orchestrator.vad import (
    FrameClassifier,
    SpeechDetector,
    Vad,
    VadEvent,
    WebRtcClassifier,
    frame_dbfs,
)
from tests.bench.bench_asr import QUESTIONS
from tests.bench.bench_worker import publish, summary
from tests.support.orchestrator import cough
from tests.support.speech import ROOT, SPEAKERS, speech_16k

RATE = 16000
FRAME = 320
END_FRAMES = 25  # 500 ms, the silence-only end of turn


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _at_dbfs(signal: np.ndarray, dbfs: float) -> np.ndarray:
    rms = float(np.sqrt(np.mean(np.square(signal)))) or 1.0
    return signal / rms * (10 ** (dbfs / 20))


def music(seconds: float, dbfs: float, seed: int = 0) -> np.ndarray:
    """Chords of harmonic tones, a new one every half second, with soft attacks."""
    rng, t = _rng(seed), np.arange(int(0.5 * RATE)) / RATE
    envelope = np.minimum(1.0, t / 0.03) * np.exp(-t * 2.0)
    chords = []
    for _ in range(int(seconds * 2)):
        root = 110 * 2 ** (rng.integers(0, 12) / 12)
        notes = [root, root * 2 ** (4 / 12), root * 2 ** (7 / 12), root * 2]
        chord = sum(np.sin(2 * np.pi * f * h * t) / h**1.5 for f in notes for h in range(1, 6))
        chords.append(chord * envelope)
    return _at_dbfs(np.concatenate(chords), dbfs)


def keyboard(seconds: float, peak: float = 0.3, seed: int = 1) -> np.ndarray:
    """Typing: short decaying clicks 80-250 ms apart."""
    rng = _rng(seed)
    out = np.zeros(int(seconds * RATE))
    at = 0
    click_t = np.arange(int(0.012 * RATE)) / RATE
    while True:
        at += int(rng.uniform(0.08, 0.25) * RATE)
        if at + len(click_t) >= len(out):
            break
        click = rng.standard_normal(len(click_t)) * np.exp(-click_t / 0.002)
        out[at : at + len(click_t)] += click * rng.uniform(0.5, 1.0)
    scaled: np.ndarray = out / np.abs(out).max() * peak
    return scaled


def knock(seconds: float, peak: float = 0.6, seed: int = 2) -> np.ndarray:
    """Three knocks on a door: low thumps with a little noise, once."""
    rng, out = _rng(seed), np.zeros(int(seconds * RATE))
    t = np.arange(int(0.08 * RATE)) / RATE
    thump = (np.sin(2 * np.pi * 90 * t) + 0.3 * rng.standard_normal(len(t))) * np.exp(-t / 0.015)
    for k in range(3):
        start = int((0.5 + 0.25 * k) * RATE)
        out[start : start + len(t)] += thump
    scaled: np.ndarray = out / np.abs(out).max() * peak
    return scaled


def hiss(seconds: float, dbfs: float = -40.0, seed: int = 3) -> np.ndarray:
    noise: np.ndarray = _rng(seed).standard_normal(int(seconds * RATE))
    return _at_dbfs(noise, dbfs)


def coughs(seconds: float, seed: int = 4) -> np.ndarray:
    out = np.zeros(int(seconds * RATE))
    for k in range(int(seconds // 2)):
        c = cough(seed=seed + k).astype(np.float64) / 32768.0
        start = int((k * 2 + 0.5) * RATE)
        out[start : start + len(c)] += c
    return out


def to_int16(signal: np.ndarray) -> np.ndarray:
    pcm: np.ndarray = np.clip(np.rint(signal * 32767), -32768, 32767).astype(np.int16)
    return pcm


NOISES: dict[str, Callable[[], np.ndarray]] = {
    "cough x5": lambda: coughs(10.0),
    "keyboard": lambda: keyboard(10.0),
    "music -35 dBFS": lambda: music(10.0, -35.0),
    "music -25 dBFS": lambda: music(10.0, -25.0, seed=5),
    "hiss -40 dBFS": lambda: hiss(10.0),
    "door knock": lambda: knock(3.0),
}


Clip = tuple[np.ndarray, int, int]


def speech_clips(quick: bool) -> dict[str, list[Clip]]:
    """Condition → (clip, first speech frame, last speech frame) per question and voice."""
    questions = QUESTIONS[:4] if quick else QUESTIONS
    clips: dict[str, list[Clip]] = {"clean": [], "quiet": [], "music": []}
    for n, (voice, text) in enumerate((v, q) for v in SPEAKERS for q in questions):
        clean = speech_16k(text, lead_s=1.0, tail_s=1.5, voice=voice).astype(np.float64) / 32768
        loud = [
            i
            for i in range(len(clean) // FRAME)
            if frame_dbfs(to_int16(clean[i * FRAME : (i + 1) * FRAME])) > -40
        ]
        first, last = loud[0], loud[-1]
        clips["clean"].append((to_int16(clean), first, last))
        clips["quiet"].append((to_int16(clean * 0.1), first, last))
        bed = music(len(clean) / RATE + 1, -35.0, seed=10 + n)[: len(clean)]
        clips["music"].append((to_int16(clean + bed), first, last))
    return clips


Found = list[tuple[int, VadEvent]]


def events(
    classifier: FrameClassifier, audio: np.ndarray, onset_frames: int = 4
) -> tuple[Found, float]:
    """(frame index, event) for one clip through a fresh ``Vad``; seconds of compute per frame."""
    vad = Vad(classifier, SpeechDetector(onset_frames=onset_frames, end_frames=END_FRAMES))
    out: Found = []
    started = time.perf_counter()
    for i, (_, result) in enumerate(vad.feed(audio)):
        if result.event is not None and result.event is not VadEvent.SPEECH_PAUSE:
            out.append((i, result.event))
    return out, (time.perf_counter() - started) / max(1, len(audio) // FRAME)


def speech_row(
    new: Callable[[], FrameClassifier], onset_frames: int, clips: list[Clip]
) -> dict[str, Any]:
    onset_ms, release_ms, missed, split = [], [], 0, 0
    for audio, first, last in clips:
        found, _ = events(new(), audio, onset_frames)
        starts = [i for i, e in found if e is VadEvent.SPEECH_START]
        ends = [i for i, e in found if e is VadEvent.SPEECH_END]
        if not starts:
            missed += 1
            continue
        onset_ms.append((starts[0] + 1 - first) * 20)
        split += sum(1 for i in ends if i < last)
        if ends:
            # The silence run that ended the turn began END_FRAMES before SPEECH_END.
            release_ms.append((ends[-1] + 1 - END_FRAMES - (last + 1)) * 20)
    return {
        "clips": len(clips),
        "missed": missed,
        "split": split,
        "onset_ms": summary(onset_ms) if onset_ms else None,
        "release_ms": summary(release_ms) if release_ms else None,
    }


def render(results: dict[str, Any]) -> str:
    lines = [f"VAD ({results['cores']} cores; onset 80 ms unless named, end 500 ms)", ""]
    lines.append(
        f"{'classifier':<12} {'speech':<7} {'missed':>6} {'split':>5} "
        f"{'onset p50/p95 ms':>17} {'release p50/p95 ms':>19}"
    )
    for name, row in results["classifiers"].items():
        for condition, s in row["speech"].items():
            onset = s["onset_ms"] or {"p50": float("nan"), "p95": float("nan")}
            release = s["release_ms"] or {"p50": float("nan"), "p95": float("nan")}
            lines.append(
                f"{name:<12} {condition:<7} {s['missed']:>3}/{s['clips']:<2} {s['split']:>5} "
                f"{onset['p50']:>8.0f}/{onset['p95']:<8.0f} "
                f"{release['p50']:>9.0f}/{release['p95']:<9.0f}"
            )
    lines += ["", f"{'classifier':<12} " + " ".join(f"{n:>15}" for n in NOISES) + "   us/frame"]
    for name, row in results["classifiers"].items():
        counts = " ".join(f"{row['false_onsets'][n]:>15}" for n in NOISES)
        lines.append(f"{name:<12} {counts}   {row['us_per_frame']:>8.0f}")
    lines.append("\n(false onsets: speech starts found in noise alone, i.e. false barge-ins)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 questions per voice")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results" / "vad.json")
    args = parser.parse_args()
    silero = SileroModel()
    # name → (a new per-stream classifier, onset frames of 20 ms)
    classifiers: dict[str, tuple[Callable[[], FrameClassifier], int]] = {
        "webrtc-2": (partial(WebRtcClassifier, 2), 4),
        "webrtc-3": (partial(WebRtcClassifier, 3), 4),
        "silero": (silero.classifier, 4),
        "silero/60ms": (silero.classifier, 3),
        "silero/40ms": (silero.classifier, 2),
    }
    clips = speech_clips(args.quick)
    noises = {name: to_int16(make()) for name, make in NOISES.items()}
    results: dict[str, Any] = {"cores": os.cpu_count(), "classifiers": {}}
    for name, (new, onset) in classifiers.items():
        row: dict[str, Any] = {
            "onset_frames": onset,
            "speech": {condition: speech_row(new, onset, c) for condition, c in clips.items()},
            "false_onsets": {},
        }
        costs = []
        for noise, audio in noises.items():
            found, cost = events(new(), audio, onset)
            row["false_onsets"][noise] = sum(1 for _, e in found if e is VadEvent.SPEECH_START)
            costs.append(cost)
        row["us_per_frame"] = float(np.median(costs)) * 1e6
        results["classifiers"][name] = row
    publish(results, args.out, render)


if __name__ == "__main__":
    main()
