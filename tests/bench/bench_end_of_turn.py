"""End-of-turn bench: do the judges cut people off, and do they make answers wait?

Offline, no server: each phrase is spoken in every English CPU voice (and two
espeak-ng voices where installed), 200 ms of silence is added (the pause at
which a session asks its judges), Whisper transcribes it and Smart Turn hears
it, and duplex's own policy (``EndOfTurn.decide``) gives its verdict:

- an *unfinished* phrase (the first half of a question, cut where people
  hesitate) must wait: ``complete`` cuts the user off at any hesitation,
  ``doubted`` at one longer than the doubt's silence (``--end-of-turn-doubt-ms``,
  500 ms, for a question, ``--end-of-turn-statement-doubt-ms``, 700 ms, for a
  statement); ``cut at 0.6 s`` counts those a hesitation as long as the
  conversation bench's would cut;
- a *complete* question should be answered at the pause: ``doubted`` costs
  the doubt's silence, ``incomplete`` the full silence (1 s); ``wait`` is the
  mean silence before the reply may sound.

Unfinished phrases are heard two ways: spoken alone (a voice ends any text
as a finished sentence, so this tests the words) and cut from the whole
sentence after the first half (the voice of a sentence going on, as a
person's hesitation has).

The phrases (``turn_phrases``) come in four sets, each written before the rules it measures:
``dev`` is what the transcript's rules were first written against (the
conversation bench's hesitations and others); ``test`` was written before
those rules and only measured (they carried over to none of it); the second
round of rules was written from the failures of both, and ``test2``, written
before that round, is only measured: how the rules carry over to phrases
they were not made for. The last word's threshold was then chosen on all
three, and ``test3`` was written before the statement's doubt and the
longer doubted silence were measured or chosen.
The words' verdict is the rules', for a question Whisper's own
(``EndOfTurn.question_end``: its probability of a sentence end at the "?"),
and the sound under the last word (``EndOfTurn.last_word_min_s``: a word
Whisper added to a cut phrase lies where the sound has stopped);
``doubts`` shows, for questions and statements apart, how many unfinished
and complete ones each threshold of that probability would hold back, and
``unheard`` how many each threshold of the sound under the last word would.
A third way, ``filler-cut``: the whole sentence with a filler after the first
half ("I'd like to book, um, a table for two"), cut before the rest, as a
person says "uh" and then pauses; Whisper often leaves the filler out ("I'd
like to book.") or hears a word in it ("Can you turn the volume up?").
A statement's pitch (``prosody``) is judged against its voice's usual end,
taken from that voice's other phrase sets (``pitch_end``); ``pitch: doubted``
counts the verdicts it changed. A fifth split, ``recorded``, is people's voices
(``recorded_speech``: recordings that ship in PyPI archives, fetched once): each
utterance whole (complete) and cut at every word boundary inside it
(``unfinished-cut``), as Smart Turn, trained on people, hears no synthetic voice.
``--clips FILE`` keeps the spoken clips
(~20 minutes to make, the filler clips ~4 of them; a cache without them gets
them added) for the next run. Writes ``bench-results/end_of_turn.json``.

    PYTHONPATH=. .venv/bin/python -m tests.bench.bench_end_of_turn
"""

from __future__ import annotations

import argparse
import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np

from duplex_orchestrator.app import end_of_turn, make_transcriber
from duplex_orchestrator.asr import Transcriber
from duplex_orchestrator.config import OrchestratorConfig, build_config
from duplex_orchestrator.endpoint import is_statement, transcript_complete, wants_more
from duplex_orchestrator.prosody import final_fall_st
from duplex_orchestrator.smart_turn import SmartTurn
from tests.bench import recorded_speech
from tests.bench.bench_conversation import spoken
from tests.bench.bench_worker import publish
from tests.bench.end_of_turn_tables import doubts, render, tally, unheard
from tests.bench.pitch_end import with_pitch
from tests.bench.turn_phrases import COMPLETE, UNFINISHED
from tests.support.orchestrator import silence
from tests.support.speech import ROOT, SPEAKERS, espeak_speakers
from tests.support.whisper import DEFAULT_DIR

PAUSE_S = 0.2
FRAME = 320
RECORDED = "recorded"
"""The split of people's recordings (``recorded_speech``): complete and cut only."""
SPLITS = sorted([*UNFINISHED, RECORDED])


def _norm(word: str) -> str:
    return re.sub(r"[^a-z']", "", word.lower())


def cut_head(aligner: Any, first: str, rest: str, voice: str) -> np.ndarray | None:
    """The whole sentence spoken, cut after ``first``: a hesitation's mid-sentence voice.

    A voice speaks any text it is given as a finished sentence (its pitch falls
    at the end), which no person hesitating does; cut from the whole sentence,
    the first half keeps the voice of a sentence going on. The cut is at the
    quietest 20 ms within 40 ms of the word boundary Whisper's word timestamps
    give; None when Whisper's words do not line up with the text (a misheard
    word).
    """
    audio = spoken(f"{first} {rest}", voice, lead_s=0.3)
    segments, _ = aligner.transcribe(
        audio.astype(np.float32) / 32768, language="en", word_timestamps=True, beam_size=1
    )
    words = [w for segment in segments for w in segment.words]
    k = len(first.split())
    if len(words) <= k or _norm(words[k - 1].word) != _norm(first.split()[-1]):
        return None
    return quietest_cut(audio, words[k - 1].end, words[k].start)


def quietest_cut(audio: np.ndarray, end_s: float, next_start_s: float) -> np.ndarray:
    """``audio`` cut at its quietest 20 ms from 40 ms before a word's end (``end_s``) to
    40 ms after the next word's start: Whisper's word timestamps are that loose."""
    low = int((end_s - 0.04) * 16000) // FRAME
    high = max(low + 1, int((next_start_s + 0.04) * 16000) // FRAME)
    levels = [np.abs(audio[i * FRAME : (i + 1) * FRAME].astype(np.float64)).mean() for i in
              range(low, high)]  # fmt: skip
    at = (low + int(np.argmin(levels))) * FRAME + FRAME // 2
    return audio[:at]


FILLERS = ("uh", "um")


def cut_before_rest(
    aligner: Any, first: str, filler: str, rest: str, voice: str
) -> np.ndarray | None:
    """The whole sentence spoken with a filler after ``first`` ("I'd like to book, um, a
    table for two"), cut just before ``rest``: a hesitation that says "uh" and then
    goes quiet. Whisper often leaves the filler out of its words, so the cut is at the
    quietest 20 ms within 80 ms before the first word of ``rest`` (by Whisper's word
    timestamps); None when that word is not found after the first half."""
    audio = spoken(f"{first}, {filler}, {rest}", voice, lead_s=0.3)
    segments, _ = aligner.transcribe(
        audio.astype(np.float32) / 32768, language="en", word_timestamps=True, beam_size=1
    )
    words = [w for segment in segments for w in segment.words]
    k, then = len(first.split()), _norm(rest.split()[0])
    after = [w for w in words[k:] if _norm(w.word) == then]
    if len(words) <= k or _norm(words[k - 1].word) != _norm(first.split()[-1]) or not after:
        return None
    high = int((after[0].start + 0.02) * 16000) // FRAME
    low = max(0, high - 5)
    levels = [np.abs(audio[i * FRAME : (i + 1) * FRAME].astype(np.float64)).mean() for i in
              range(low, high)]  # fmt: skip
    return audio[: (low + int(np.argmin(levels))) * FRAME + FRAME // 2]


def filler_clips(aligner: Any, voices: list[str], splits: list[str]) -> list[dict[str, Any]]:
    """Every unfinished phrase of ``splits`` in every voice, with a filler after it
    ("uh" and "um" in turn), cut before the rest: kind ``filler-cut``."""
    out: list[dict[str, Any]] = []
    for split, pairs in UNFINISHED.items():
        if split not in splits:
            continue
        for index, (first, rest) in enumerate(pairs):
            filler = FILLERS[index % len(FILLERS)]
            for voice in voices:
                head = cut_before_rest(aligner, first, filler, rest, voice)
                if head is not None:
                    out.append(
                        {"split": split, "voice": voice, "phrase": f"{first}, {filler}",
                         "kind": "filler-cut", "audio": head}
                    )  # fmt: skip
    return out


def clips(aligner: Any, voices: list[str], splits: list[str] | None = None) -> list[dict[str, Any]]:
    """Every phrase of ``splits`` (None: all) in every voice: kind, split, voice, phrase
    and audio (no pause yet)."""
    out: list[dict[str, Any]] = []
    wanted = set(SPLITS if splits is None else splits)
    for split, pairs in UNFINISHED.items():
        if split not in wanted:
            continue
        for first, rest in pairs:
            for voice in voices:
                row = {"split": split, "voice": voice, "phrase": first}
                out.append(row | {"kind": "unfinished-alone", "audio": spoken(first, voice, 0.3)})
                head = cut_head(aligner, first, rest, voice)
                if head is not None:
                    out.append(row | {"kind": "unfinished-cut", "audio": head})
    for split, phrases in COMPLETE.items():
        if split not in wanted:
            continue
        for phrase in phrases:
            for voice in voices:
                audio = spoken(phrase, voice, lead_s=0.3)
                out.append(
                    {"split": split, "voice": voice, "phrase": phrase, "kind": "complete",
                     "audio": audio}
                )  # fmt: skip
    out += filler_clips(aligner, voices, sorted(wanted))
    return out + (recorded_speech.clips(aligner, quietest_cut) if RECORDED in wanted else [])


def judged(
    transcriber: Transcriber,
    smart_turn: SmartTurn,
    config: OrchestratorConfig,
    clips: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """One row per clip: what Whisper heard at the pause, what each judge said, and how
    long the reply waits, by the orchestrator's ``config``."""
    policy = end_of_turn(config)
    rows = []
    for clip in clips:
        audio = np.concatenate([clip["audio"], silence(PAUSE_S)])
        transcript = transcriber.transcribe(audio, align=policy.wants_last_word).aligned()
        heard, ends_here = transcript.text, transcript.ends_here
        under_last = transcript.last_word_sound_s
        probability = smart_turn.probability(audio)
        verdict = policy.decide(heard, probability, ends_here, under_last).value
        fall = final_fall_st(audio, 16000) if is_statement(heard) else None
        rows.append(
            {k: v for k, v in clip.items() if k != "audio"}
            | {
                "heard": heard,
                "rules_complete": transcript_complete(heard),
                "ends_here": ends_here,
                "sure_complete": policy.words_complete(heard, ends_here),
                "last_word_sound_s": under_last,
                "words_complete": policy.words_complete(heard, ends_here, under_last),
                "smart_turn": probability,
                "verdict_without_pitch": verdict,
                "fall_st": fall,
            }
        )
    if policy.pitch_rise_st > 0:
        with_pitch(rows, policy)
    for row in rows:
        row.setdefault("verdict", row["verdict_without_pitch"])
        row.setdefault("verdict_first", row["verdict"])
        heard, probability = row["heard"], row["smart_turn"]
        row["wait_ms"] = wait_ms(row["verdict"], heard, probability, config)
        row["wait_ms_first"] = wait_ms(row["verdict_first"], heard, probability, config)
    return rows


def wait_ms(verdict: str, heard: str, probability: float, config: OrchestratorConfig) -> int:
    """The silence after the last sound before a reply may sound, by the verdict at the
    pause: the pause, the doubt's silence (a statement's, also for a question Smart Turn
    is sure is unfinished: ``EndOfTurn.doubts_long``; else a question's), the full
    silence that ends any turn, or for words that want more the unfinished silence."""
    if verdict == "complete":
        return config.end_of_turn_pause_ms
    if verdict == "doubted":
        if end_of_turn(config).doubts_long(heard, probability):
            return config.end_of_turn_statement_doubt_ms
        return config.end_of_turn_doubt_ms
    full = config.turn_silence_ms(judged=True)
    if wants_more(heard):  # words that want more: the longer silence, if longer
        return max(full, config.end_of_turn_unfinished_ms)
    return full


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results" / "end_of_turn.json")
    parser.add_argument(
        "--splits", nargs="+", choices=SPLITS, default=SPLITS,
        help="the phrase sets to hear (default: all; recorded: people's recordings)",
    )  # fmt: skip
    parser.add_argument(
        "--clips", type=Path,
        help="a cache of the spoken clips (pickle): read if there, else written",
    )  # fmt: skip
    parser.add_argument(
        "--end-of-turn-pitch-rise-st", type=float,
        help="the orchestrator's flag of that name (default: its default; 0: off)",
    )  # fmt: skip
    parser.add_argument(
        "--end-of-turn-pitch-first-fall-st",
        help="the orchestrator's flag of that name (default: its default; off: none)",
    )  # fmt: skip
    parser.add_argument(
        "--asr-repetition-penalty", type=float,
        help="the orchestrator's flag of that name (default: its default)",
    )  # fmt: skip
    args = parser.parse_args()
    from faster_whisper import WhisperModel

    aligner = WhisperModel(str(DEFAULT_DIR), compute_type="int8")
    voices = [*SPEAKERS, *espeak_speakers()]
    flags = {"dev": True, "asr_model_dir": DEFAULT_DIR, "asr_workers": 1, "asr_threads": 1}
    for flag in (
        "asr_repetition_penalty", "end_of_turn_pitch_rise_st", "end_of_turn_pitch_first_fall_st"
    ):  # fmt: skip
        if getattr(args, flag) is not None:
            flags[flag] = getattr(args, flag)
    config = build_config(flags)  # the orchestrator's defaults, one Whisper on one core
    transcriber = make_transcriber(config)
    if args.clips is not None and args.clips.exists():
        spoken_clips = pickle.loads(args.clips.read_bytes())  # a cache this bench wrote
        older = len(spoken_clips)
        if not any(clip["kind"] == "filler-cut" for clip in spoken_clips):  # an older cache
            spoken_clips += filler_clips(aligner, voices, args.splits)
        if RECORDED in args.splits and not any(c["split"] == RECORDED for c in spoken_clips):
            spoken_clips += recorded_speech.clips(aligner, quietest_cut)
        if len(spoken_clips) > older:
            args.clips.write_bytes(pickle.dumps(spoken_clips))
    else:
        spoken_clips = clips(aligner, voices, args.splits)
        if args.clips is not None:
            args.clips.write_bytes(pickle.dumps(spoken_clips))
    rows = judged(transcriber, SmartTurn(), config, spoken_clips)
    results = {"rows": rows, "tally": tally(rows), "doubts": doubts(rows), "unheard": unheard(rows)}
    publish(results, args.out, render)


if __name__ == "__main__":
    main()
