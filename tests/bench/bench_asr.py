"""Benchmark speech recognition: ``make bench`` (or ``python -m tests.bench.bench_asr``).

Spoken questions from three voices (Piper joe, Kokoro kumo and alpha) go
through duplex's ``Transcriber`` (Whisper base, int8, greedy) with the encoder
window sized to the utterance and with Whisper's full 30 s window: the word
error rate of each (accuracy must not suffer for the speed) and the latency
per utterance, p50/p95. Then where one pass's time goes (``anatomy``: the
features, the encoder, the decoder's setup and each token), which is the floor
a turn's transcript pays after the speculation gap. Then 1, 4 and 8 utterances
at once through one model (``workers`` transcriptions in parallel, the rest
queued): the latency each speaker sees. Writes ``bench-results/asr.json``.
``--device cuda`` runs it all on a GPU (float16; not run here: no GPU was lent).
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import ctranslate2
import jiwer
import numpy as np

from duplex_orchestrator.asr import (
    Transcriber,
    as_float32,
    generate_max_length,
    token_budget,
    window_features,
    window_frames,
)
from duplex_orchestrator.config import OrchestratorConfig, build_config
from tests.bench import bench_orchestrator
from tests.bench.bench_worker import publish, summary
from tests.support.orchestrator import words_of
from tests.support.speech import ROOT, SPEAKERS, speech_16k
from tests.support.whisper import DEFAULT_DIR

QUESTIONS = [
    *bench_orchestrator.QUESTIONS,
    "I would like to order a large pizza with mushrooms.",
    "Could you book a table for two at seven o'clock?",
    "Is it going to rain in London this weekend?",
    "Tell me a short joke about cats and dogs.",
    "How many kilometres are there in a mile?",
    "Turn off the lights in the kitchen, please.",
    "What is the capital city of Australia?",
]
PENALTY = build_config({"dev": True}).asr_repetition_penalty
"""The orchestrator's default penalty on tokens Whisper already wrote (against loops)."""
WINDOWS = {
    "fitted": (1.0, 2.0, PENALTY),
    "fitted-no-penalty": (1.0, 2.0, 1.0),
    "fitted-5s": (5.0, 3.0, PENALTY),
    "fitted-pad1": (5.0, 1.0, PENALTY),
    "full-30s": (0.0, 0.0, PENALTY),
}
"""Decoding configurations: (window_step_s, pad_s, repetition_penalty); step 0 is
Whisper's 30 s window."""


def utterances() -> list[tuple[str, str, np.ndarray]]:
    """(voice, text, audio) for every question in every voice."""
    return [
        (voice, text, speech_16k(text, lead_s=0.3, tail_s=0.3, voice=voice))
        for voice in SPEAKERS
        for text in QUESTIONS
    ]


def accuracy(transcriber: Transcriber, data: list[tuple[str, str, np.ndarray]]) -> dict[str, Any]:
    """Word error rate over all utterances, per voice, and the latency per utterance."""
    refs, hyps, latency_ms = [], [], []
    per_voice: dict[str, tuple[list[str], list[str]]] = {}
    for voice, text, audio in data:
        result = transcriber.transcribe(audio)
        ref, hyp = words_of(text), words_of(result.text) or "<empty>"
        refs.append(ref)
        hyps.append(hyp)
        per_voice.setdefault(voice, ([], []))[0].append(ref)
        per_voice[voice][1].append(hyp)
        latency_ms.append(result.seconds * 1000)
    return {
        "wer": jiwer.wer(refs, hyps),
        "wer_per_voice": {v: jiwer.wer(r, h) for v, (r, h) in per_voice.items()},
        "latency_ms": summary(latency_ms),
    }


def anatomy(transcriber: Transcriber, data: list[tuple[str, str, np.ndarray]]) -> dict[str, Any]:
    """Where one greedy pass on the fitted window spends its time, per utterance (p50s).

    The decoder's setup (its cross-attention over the encoder's output and the
    prompt) is a one-token decode less one token's time; a token's time is the rest
    of a full decode over its other tokens. Reads the transcriber's model directly:
    these are its own calls, timed one by one.
    """
    model: Any = transcriber._model
    prompt = list(transcriber._prompt)
    stages: dict[str, list[float]] = {
        k: [] for k in ("features_ms", "encoder_ms", "setup_ms", "token_ms", "tokens", "pass_ms")
    }
    for _, _, audio in data:
        samples = as_float32(audio)
        frames = len(samples) // 160
        window = window_frames(frames, transcriber.pad_s, transcriber.window_step_s)
        started = time.perf_counter()
        features = window_features(model.feature_extractor, samples, window)
        featured = time.perf_counter()
        batch = np.ascontiguousarray(features[np.newaxis].astype(np.float32))
        encoded = model.model.encode(ctranslate2.StorageView.from_array(batch), to_cpu=False)
        encoder_done = time.perf_counter()

        def decode(max_length: int, encoded: Any = encoded) -> tuple[float, int]:
            began = time.perf_counter()
            result = model.model.generate(
                encoded, [prompt], beam_size=1, max_length=max_length,
                suppress_blank=True, suppress_tokens=transcriber._suppress,
            )[0]  # fmt: skip
            return (time.perf_counter() - began) * 1000, len(result.sequences_ids[0])

        budget = token_budget(frames)
        full_ms, tokens = decode(generate_max_length(budget, len(prompt), model.max_length))
        one_ms, _ = decode(len(prompt) + 1)  # CTranslate2 decodes min(n // 2, n - prompt)
        token_ms = (full_ms - one_ms) / max(1, tokens - 1)
        stages["features_ms"].append((featured - started) * 1000)
        stages["encoder_ms"].append((encoder_done - featured) * 1000)
        stages["setup_ms"].append(one_ms - token_ms)
        stages["token_ms"].append(token_ms)
        stages["tokens"].append(tokens)
        stages["pass_ms"].append((encoder_done - started) * 1000 + full_ms)
    return {name: float(np.median(values)) for name, values in stages.items()} | {
        "gap_ms": OrchestratorConfig.model_fields["speculate_ms"].default
    }


def concurrent(
    transcriber: Transcriber, data: list[tuple[str, str, np.ndarray]], speakers: int, rounds: int
) -> dict[str, Any]:
    """``speakers`` utterances submitted at once, ``rounds`` times: latency each one sees."""
    latency_ms: list[float] = []
    with ThreadPoolExecutor(speakers) as pool:
        for r in range(rounds):
            batch = [data[(r * speakers + i) % len(data)][2] for i in range(speakers)]
            started = time.perf_counter()

            def one(audio: np.ndarray, started: float = started) -> float:
                transcriber.transcribe(audio)
                return (time.perf_counter() - started) * 1000

            latency_ms.extend(pool.map(one, batch))
    return summary(latency_ms)


def render(results: dict[str, Any]) -> str:
    on = "int8" if results.get("device", "cpu") == "cpu" else "float16 on a GPU"
    lines = [f"ASR (Whisper base {on}, {results['cores']} cores)", ""]
    lines.append(f"{'window':<10} {'WER':>6} {'p50 ms':>8} {'p95 ms':>8}  per voice")
    for name, row in results["windows"].items():
        voices = " ".join(f"{v.split('-')[-2]}:{w:.3f}" for v, w in row["wer_per_voice"].items())
        lat = row["latency_ms"]
        lines.append(
            f"{name:<10} {row['wer']:>6.3f} {lat['p50']:>8.0f} {lat['p95']:>8.0f}  {voices}"
        )
    parts = results["anatomy"]
    lines += [
        "",
        "one pass, one thread (p50s): features {features_ms:.0f} ms, encoder {encoder_ms:.0f} ms,"
        " decoder setup {setup_ms:.0f} ms, {tokens:.0f} tokens at {token_ms:.1f} ms;"
        " pass {pass_ms:.0f} ms, after the {gap_ms} ms gap {floor:.0f} ms".format(
            **parts, floor=parts["gap_ms"] + parts["pass_ms"]
        ),
    ]
    lines += ["", f"{'workers':>7} {'speakers':>8} {'p50 ms':>8} {'p95 ms':>8}"]
    for row in results["concurrency"]:
        lat = row["latency_ms"]
        lines.append(
            f"{row['workers']:>7} {row['speakers']:>8} {lat['p50']:>8.0f} {lat['p95']:>8.0f}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4, help="rounds per concurrency level")
    parser.add_argument("--speakers", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results" / "asr.json")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    args = parser.parse_args()
    device = args.device
    data = utterances()
    results: dict[str, Any] = {
        "cores": os.cpu_count(), "device": device, "windows": {}, "concurrency": []
    }  # fmt: skip
    cores = os.cpu_count() or 1
    for name, (step, pad, penalty) in WINDOWS.items():
        transcriber = Transcriber(
            DEFAULT_DIR, device=device, workers=1, threads=cores, window_step_s=step, pad_s=pad,
            repetition_penalty=penalty,
        )  # fmt: skip
        transcriber.transcribe(data[0][2])  # warm up
        results["windows"][name] = accuracy(transcriber, data)
    one_thread = Transcriber(
        DEFAULT_DIR, device=device, workers=1, threads=1, repetition_penalty=PENALTY
    )
    one_thread.transcribe(data[0][2])
    results["anatomy"] = anatomy(one_thread, data)
    for workers in sorted({1, max(1, cores // 2), cores}):
        threads = max(1, cores // workers)
        transcriber = Transcriber(
            DEFAULT_DIR, device=device, workers=workers, threads=threads,
            repetition_penalty=PENALTY,
        )  # fmt: skip
        transcriber.transcribe(data[0][2])
        for speakers in args.speakers:
            row = concurrent(transcriber, data, speakers, args.rounds)
            results["concurrency"].append(
                {"workers": workers, "speakers": speakers, "latency_ms": row}
            )
    publish(results, args.out, render)


if __name__ == "__main__":
    main()
