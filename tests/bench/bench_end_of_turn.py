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

The phrases come in four sets, each written before the rules it measures:
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
counts the verdicts it changed. ``--clips FILE`` keeps the spoken clips
(~20 minutes to make, the filler clips ~4 of them; a cache without them gets
them added) for the next run. Writes ``bench-results/end_of_turn.json``.

    PYTHONPATH=. .venv/bin/python -m tests.bench.bench_end_of_turn
"""

from __future__ import annotations

import argparse
import pickle
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from duplex_orchestrator.app import end_of_turn, make_transcriber
from duplex_orchestrator.asr import Transcriber
from duplex_orchestrator.config import OrchestratorConfig, build_config
from duplex_orchestrator.endpoint import final_mark, is_statement, transcript_complete
from duplex_orchestrator.prosody import final_fall_st
from duplex_orchestrator.smart_turn import SmartTurn
from tests.bench.bench_asr import QUESTIONS
from tests.bench.bench_conversation import HESITATIONS, spoken
from tests.bench.bench_conversation import PAUSE_S as HESITATION_S
from tests.bench.bench_worker import publish
from tests.bench.pitch_end import with_pitch
from tests.support.orchestrator import silence
from tests.support.speech import ROOT, SPEAKERS, espeak_speakers
from tests.support.whisper import DEFAULT_DIR

PAUSE_S = 0.2
FRAME = 320

UNFINISHED = {
    "dev": [
        *HESITATIONS,
        ("My flight leaves at", "half past nine tomorrow."),
        ("Could you please find", "a cheap hotel near the station?"),
        ("What's the best way to get", "to the airport from here?"),
        ("I need a taxi for", "four people at six."),
        ("Please set an alarm for", "seven in the morning."),
        ("Send a message to", "my brother saying I'm late."),
        ("I was wondering if you could", "help me plan a trip."),
        ("Play some music by", "the Beatles, please."),
        ("What do you think about", "electric cars?"),
        ("The thing is, I really want", "a quieter room."),
        ("Remind me tomorrow morning to", "call the dentist."),
        ("Can you check whether", "my package has arrived?"),
        ("How much would it cost to", "fly to Rome in May?"),
        ("Let's say we meet on", "Friday afternoon."),
        ("I think the problem is that", "the printer is offline."),
        ("Could you translate", "good morning into Spanish?"),
    ],
    "test": [
        ("Can you book me a flight to", "Madrid next Friday?"),
        ("I'm looking for a restaurant that", "serves vegetarian food."),
        ("Would you mind checking", "if the store is open?"),
        ("What's the weather going to be like in", "Paris this weekend?"),
        ("I want to cancel my", "dentist appointment."),
        ("Could you give me directions to", "the nearest hospital?"),
        ("Please add milk and eggs to", "my shopping list."),
        ("How do I reset", "my router?"),
        ("I'd like you to explain", "how vaccines work."),
        ("Is it possible to change", "my seat on the plane?"),
        ("Tell me how to make", "a chocolate cake."),
        ("We should probably leave before", "the traffic gets bad."),
        ("Can you turn the volume", "down a little?"),
        ("I forgot where I put", "my car keys."),
        ("Show me pictures of", "the northern lights."),
        ("Do you know anyone who", "speaks Japanese?"),
    ],
    "test2": [
        ("Could you send an email to", "my boss about the meeting?"),
        ("I'd like to know more about", "your return policy."),
        ("Is there a bus that goes to", "the city center?"),
        ("Can you remind me to buy", "flowers for my mother?"),
        ("What's the difference between", "a crocodile and an alligator?"),
        ("I need to pick up", "my daughter from school at three."),
        ("Please schedule a meeting with", "the design team on Monday."),
        ("Do you have any recommendations for", "a good Italian restaurant?"),
        ("Could you read me", "the latest headlines?"),
        ("My daughter wants to learn", "how to play the piano."),
        ("I'm trying to find", "a gift for my father."),
        ("Can you tell me which", "train goes to Boston?"),
        ("We're planning a trip to", "Japan in the spring."),
        ("How long does it take to", "boil an egg?"),
        ("Remind me to water", "the plants on Sunday."),
        ("Is it true that", "cats can see in the dark?"),
    ],
    "test3": [
        ("I want to order", "a pepperoni pizza for delivery."),
        ("Can you tell me how", "to get to the library?"),
        ("My brother is coming to", "visit us next week."),
        ("Please turn on", "the lights in the bedroom."),
        ("I'd love to hear", "a song by Adele."),
        ("What's a good place to", "go hiking near here?"),
        ("We need to buy", "bread and some coffee."),
        ("Could you find out when", "the next train leaves?"),
        ("I have a meeting", "with my manager at noon."),
        ("Can you explain why", "the moon changes shape?"),
        ("Let me know if", "it starts raining."),
        ("She asked me to call", "the plumber this afternoon."),
        ("How many calories are in", "a banana?"),
        ("I'm going to be", "twenty minutes late."),
        ("Set a reminder to pay", "the electricity bill."),
        ("Do you think it will", "snow on Christmas?"),
    ],
}
"""(first half, the rest): a hesitation after the first half must not end the turn."""
COMPLETE = {
    "dev": [
        *QUESTIONS,
        "What are you thinking about?",
        "Can you help me?",
        "Where is it from?",
        "Is it worth it?",
        "What time is it?",
        "Turn it off.",
        "I'd like to book a table.",
        "Tell me a joke.",
        "Could you remind me to call mom?",
        "What is this made of?",
        "Do you know where it is?",
        "Thanks, that's all.",
        "I want to go home.",
        "Can you find a hotel?",
        "What if it rains?",
        "Yes, I could.",
    ],
    "test": [
        "Can you book me a flight to Madrid?",
        "Where should we go for lunch?",
        "How do I reset my password?",
        "What's on my calendar today?",
        "Set a timer for ten minutes.",
        "Who won the game last night?",
        "I'm hungry.",
        "Read me the news.",
        "How are you doing today?",
        "Call a taxi, please.",
        "Is the bank open on Sunday?",
        "What should I wear tomorrow?",
        "Add eggs to the shopping list.",
        "Why is the sky blue?",
        "Can you turn the volume up?",
        "Never mind.",
    ],
    "test2": [
        "Could you send an email to my boss?",
        "How long does it take?",
        "Is there a bus to the airport?",
        "What's the difference?",
        "I need a break.",
        "Do you have any recommendations?",
        "Where are you from?",
        "Can you read that again?",
        "Who is it for?",
        "Play something relaxing.",
        "What can I cook with rice?",
        "Is it true?",
        "Let's go.",
        "How does it work?",
        "Tell me more about it.",
        "I'm done.",
    ],
    "test3": [
        "I want to order a pizza.",
        "Turn on the lights.",
        "I have a meeting at noon.",
        "What's the weather like?",
        "Let me know.",
        "Can you explain that?",
        "I'll be late.",
        "How many are there?",
        "Call the plumber.",
        "That sounds great.",
        "Do you think so?",
        "We need more coffee.",
        "Stop the music.",
        "Where did I park?",
        "It's too cold in here.",
        "Thank you very much.",
    ],
}


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
    low = int((words[k - 1].end - 0.04) * 16000) // FRAME
    high = max(low + 1, int((words[k].start + 0.04) * 16000) // FRAME)
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
    wanted = set(UNFINISHED if splits is None else splits)
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
    return out + filler_clips(aligner, voices, sorted(wanted))


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
    is sure is unfinished: ``EndOfTurn.doubts_long``; else a question's), or the full
    silence that ends any turn."""
    if verdict == "complete":
        return config.end_of_turn_pause_ms
    if verdict == "doubted":
        if end_of_turn(config).doubts_long(heard, probability):
            return config.end_of_turn_statement_doubt_ms
        return config.end_of_turn_doubt_ms
    return config.turn_silence_ms(judged=True)


def tally(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per kind and split: the verdicts, and how often each judge alone said complete."""
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        group = out.setdefault(
            f"{row['kind']}/{row['split']}",
            {
                "n": 0,
                "verdicts": Counter(),
                "rules_complete": 0,
                "sure_complete": 0,
                "words_complete": 0,
                "smart_turn_complete": 0,
                "cut_at_hesitation": 0,
                "pitch_doubted": 0,
                "wait_ms": 0.0,
                "first_pitch_doubted": 0,
                "first_cut_at_hesitation": 0,
                "first_wait_ms": 0.0,
            },
        )
        group["n"] += 1
        group["verdicts"][row["verdict"]] += 1
        group["rules_complete"] += row["rules_complete"]
        group["sure_complete"] += row["sure_complete"]
        group["words_complete"] += row["words_complete"]
        group["smart_turn_complete"] += row["smart_turn"] >= 0.5
        group["cut_at_hesitation"] += row["wait_ms"] <= HESITATION_S * 1000
        group["pitch_doubted"] += row["verdict"] != row["verdict_without_pitch"]
        group["wait_ms"] += row["wait_ms"]
        # The same for a user's first statements, judged against the first usual fall.
        group["first_pitch_doubted"] += row["verdict_first"] != row["verdict_without_pitch"]
        group["first_cut_at_hesitation"] += row["wait_ms_first"] <= HESITATION_S * 1000
        group["first_wait_ms"] += row["wait_ms_first"]
    for group in out.values():
        group["verdicts"] = dict(group["verdicts"])
        group["wait_ms"] = round(group["wait_ms"] / group["n"])
        group["first_wait_ms"] = round(group["first_wait_ms"] / group["n"])
    return out


THRESHOLDS = (0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)


def _count_below(
    values: list[tuple[str, float]], thresholds: tuple[float, ...]
) -> dict[str, dict[str, int]]:
    """Per group of (group, value) pairs: how many, and how many below each threshold."""
    out: dict[str, dict[str, int]] = {}
    for name, value in values:
        group = out.setdefault(name, {"n": 0})
        group["n"] += 1
        for threshold in thresholds:
            group[str(threshold)] = group.get(str(threshold), 0) + (value < threshold)
    return dict(sorted(out.items()))


def doubts(rows: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Per kind and last mark ("?" or "."), over the clips whose words the rules call
    complete: how many, and how many Whisper doubts (``ends_here`` below each of
    ``THRESHOLDS``). Doubting an unfinished phrase saves the user from being
    cut off; doubting a complete one makes its answer wait: a question for the full
    silence (``question_end``), a statement for the doubt's (``statement_end``)."""
    values = [
        (f"{row['kind']} {final_mark(row['heard'])}", row["ends_here"])
        for row in rows
        if row["rules_complete"]
        and final_mark(row["heard"]) in ("?", ".")
        and row["ends_here"] is not None
    ]
    return _count_below(values, THRESHOLDS)


LAST_WORD_THRESHOLDS = (0.04, 0.06, 0.08, 0.1, 0.12, 0.16)


def unheard(rows: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Per kind, over the clips whose words read complete to the rules and Whisper's
    ``ends_here``: how many, and how many have less sound under their last word
    (``last_word_sound_s``) than each of ``LAST_WORD_THRESHOLDS``. Fewer than that
    under an unfinished phrase's last word is a word Whisper added (its completion)."""
    values = [
        (row["kind"], row["last_word_sound_s"])
        for row in rows
        if row["sure_complete"] and row["last_word_sound_s"] is not None
    ]
    return _count_below(values, LAST_WORD_THRESHOLDS)


def _below_table(
    title: str, first: str, groups: dict[str, dict[str, int]], thresholds: tuple[float, ...]
) -> list[str]:
    """Lines of a table: per group, its clips and how many fall below each threshold."""
    lines = ["", *title.splitlines()]
    lines.append(f"{first:<26} {'n':>4} " + " ".join(f"{t:>5}" for t in thresholds))
    for name, by in groups.items():
        cells = " ".join(f"{by.get(str(t), 0):>5}" for t in thresholds)
        lines.append(f"{name:<26} {by['n']:>4} {cells}")
    return lines


def render(results: dict[str, Any]) -> str:
    lines = [
        "End of turn at a 200 ms pause (transcript+smart-turn)",
        "",
        f"{'phrases':<24} {'n':>4} {'complete':>9} {'doubted':>8} {'incomplete':>11}"
        f" {'rules: complete':>16} {'+ Whisper sure':>15} {'+ last word heard':>18}"
        f" {'Smart Turn: complete':>21} {'pitch: doubted':>15} {'cut at 0.6 s':>13}"
        f" {'wait ms':>8}",
    ]
    for name, group in results["tally"].items():
        v = group["verdicts"]
        lines.append(
            f"{name:<24} {group['n']:>4} {v.get('complete', 0):>9} {v.get('doubted', 0):>8}"
            f" {v.get('incomplete', 0):>11} {group['rules_complete']:>16}"
            f" {group['sure_complete']:>15} {group['words_complete']:>18}"
            f" {group['smart_turn_complete']:>21} {group['pitch_doubted']:>15}"
            f" {group['cut_at_hesitation']:>13}"
            f" {group['wait_ms']:>8}"
        )
    lines += [
        "",
        "A user's first statements (their usual end not known yet: the first usual fall)",
        f"{'phrases':<24} {'n':>4} {'pitch: doubted':>15} {'cut at 0.6 s':>13} {'wait ms':>8}",
    ]
    for name, group in results["tally"].items():
        lines.append(
            f"{name:<24} {group['n']:>4} {group['first_pitch_doubted']:>15}"
            f" {group['first_cut_at_hesitation']:>13} {group['first_wait_ms']:>8}"
        )
    lines += _below_table(
        "Whisper's doubt, where the rules read complete: clips, and how many have its\n"
        "probability of a sentence end below each threshold (a question below 0.85 waits\n"
        "for the full silence, a statement below 0.75 for a statement's doubt)",
        "phrases, last mark", results["doubts"], THRESHOLDS,
    )  # fmt: skip
    lines += _below_table(
        "Sound under the last word, where the rules and Whisper read complete: clips,\n"
        "and how many have less than each threshold (s) under their last word",
        "phrases", results["unheard"], LAST_WORD_THRESHOLDS,
    )  # fmt: skip
    lines += [
        "",
        "unfinished phrases the rules took for complete (alone / cut from the whole /",
        "with a filler, cut from the whole),",
        "with Whisper's probability of a sentence end there and the sound under the",
        "last word (* held back by either):",
    ]
    for row in results["rows"]:
        if row["kind"] != "complete" and row["rules_complete"]:
            how = row["kind"].removeprefix("unfinished-")
            sure = "   -  " if row["ends_here"] is None else f"{row['ends_here']:.2f}"
            under = row["last_word_sound_s"]
            heard = "   -  " if under is None else f"{under:+.2f}"
            held = " " if row["words_complete"] else "*"
            lines.append(
                f"  {row['split']:<5} {how:<5} {row['voice'][:20]:<20} {sure} {heard}{held} "
                f"{row['heard']!r}"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results" / "end_of_turn.json")
    parser.add_argument(
        "--splits", nargs="+", choices=sorted(UNFINISHED), default=sorted(UNFINISHED),
        help="the phrase sets to hear (default: all)",
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
        if not any(clip["kind"] == "filler-cut" for clip in spoken_clips):  # an older cache
            spoken_clips += filler_clips(aligner, voices, args.splits)
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
