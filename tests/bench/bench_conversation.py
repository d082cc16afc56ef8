"""Benchmark conversations: ``make bench`` (or ``python -m tests.bench.bench_conversation``).

A real Piper worker and a real orchestrator (Whisper base, Smart Turn, echo
bridge) per end-of-turn mode and VAD; 1, 4 and 8 WebSocket clients at once play
spoken questions in real time: complete questions in three voices (Piper joe,
Kokoro kumo and alpha) and two espeak-ng voices where ``espeak-ng`` is
installed (a female US and a male Scottish variant), and questions with a
0.6 s hesitation in the middle ("I'd like to book … a table for two") that
must not be cut, in Piper's voice and the first espeak-ng one (``--hesitation-s``
for a longer one). These voices take turns as one user, which is harder on the
judges that learn a user's voice (their pitch at a statement's end, their
pauses) than any person: ``--voices`` makes each named voice a user of its own,
every turn of it (complete and hesitating) in that voice, one run per voice. Per turn:

- voice_to_voice_ms: the last speech sample sent → the first loud reply frame received;
- premature: a reply (its text, its start or its sound) came before the user finished:
  the turn was judged over too soon, and the client knew;
- heard_early: of those, a reply whose sound came before the user finished;
- continued: a reply started at a pause inside the question and was cancelled when the
  user went on (one withdrawn while its first sound was held shows nothing else);
- asr_ms: Whisper's time for the turn, as the server reports it;
- end_of_turn_ms: the last speech frame → the turn ended (judged or by silence), as the
  server reports it; what follows it is the reply's way to the first audio;
- heard: every transcript the judgements got (partial and final): why a turn ended early.

Per run, the orchestrator's counts of speculative transcriptions (used or stale), of
turn ends by how, and of replies whose first sound was held (``/metrics``).

Then, with one client: barge-in (speech over a reply → the flush event), false
barge-ins on noise (a cough, keyboard clicks, quiet music over a reply: the reply
should not even pause, and must not stop) and a listener's acknowledgements
("Mm-hmm.", "Okay.": the reply should go on; ``interruptions``). Writes
``bench-results/conversation.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from duplex_orchestrator.vad import VAD_FRAME_SAMPLES, SpeechDetector, frame_dbfs
from tests.bench.bench_orchestrator import LOUD
from tests.bench.bench_worker import publish, summary
from tests.bench.conversation_report import counters, render
from tests.bench.interruptions import ACKNOWLEDGEMENTS, interruptions
from tests.support.orchestrator import ScriptedClient, silence, start_orchestrator
from tests.support.speech import (
    ESPEAK_SPEAKERS,
    PIPER,
    ROOT,
    SPEAKERS,
    espeak_speakers,
    speech_16k,
)
from tests.support.worker import start_worker

COMPLETE = [
    "What time does the museum open tomorrow?",
    "Can you recommend a good book about history?",
    "Please remind me to call my sister tonight.",
    "How far is the train station from here?",
]
HESITATIONS = [
    ("I would like to order", "a large pizza with mushrooms."),
    ("I'd like to book", "a table for two."),
    ("Can you tell me about", "the weather tomorrow?"),
    ("Could you remind me", "to water the plants tonight?"),
]
PAUSE_S = 0.6


def spoken(text: str, voice: str = PIPER, lead_s: float = 0.0) -> np.ndarray:
    """``text`` spoken, from its first sound to its last, after ``lead_s`` of silence.

    The voices begin and end every clause with tens of ms of near-silence; a
    frame quieter than the VAD's energy floor is not speech, so those are cut:
    the clock of every figure starts at the first or the last sound.
    """
    audio = speech_16k(text, lead_s=0.0, tail_s=0.0, voice=voice)
    loud = [
        i
        for i in range(0, len(audio) - VAD_FRAME_SAMPLES + 1, VAD_FRAME_SAMPLES)
        if frame_dbfs(audio[i : i + VAD_FRAME_SAMPLES]) >= SpeechDetector.min_dbfs
    ]
    return np.concatenate([silence(lead_s), audio[loud[0] : loud[-1] + VAD_FRAME_SAMPLES]])


@cache  # one synthesis per run: every mode and variant hears the same recordings
def clips(
    held_out: str | None = None,
    people: bool = False,
    pause_s: float = PAUSE_S,
    voice: str | None = None,
) -> list[tuple[str, np.ndarray]]:
    """(kind, 16 kHz int16 audio) for every question; the audio ends on its last sound.

    ``held_out``: the hesitations are that set of the end-of-turn bench's phrases
    (``test2``, ``test3``: sets written before the rules they measure), their first
    half cut from the whole sentence (``bench_end_of_turn.cut_head``), in Piper's and
    Kokoro's voices. ``people``: the complete turns are people's recorded utterances
    (``recorded_speech``), not the synthetic questions. ``pause_s``: the hesitations'
    pause. ``voice``: every turn in that voice alone (the same user throughout).
    """
    voices = (voice,) if voice else (*SPEAKERS, *espeak_speakers())
    if people:
        from tests.bench.recorded_speech import RECORDINGS, utterance

        out = [("complete", np.concatenate([silence(0.3), utterance(r)])) for r in RECORDINGS]
    else:
        out = [("complete", spoken(t, voice, lead_s=0.3)) for t in COMPLETE for voice in voices]
    if held_out:
        from faster_whisper import WhisperModel

        from tests.bench.bench_end_of_turn import cut_head
        from tests.bench.turn_phrases import UNFINISHED
        from tests.support.whisper import DEFAULT_DIR

        aligner = WhisperModel(str(DEFAULT_DIR), compute_type="int8")
        for said_by in voices if voice else SPEAKERS[:2]:
            for first, rest in UNFINISHED[held_out]:
                head = cut_head(aligner, first, rest, said_by)
                if head is not None:
                    tail = spoken(rest, said_by)
                    out.append(("hesitation", np.concatenate([head, silence(pause_s), tail])))
        return out
    for said_by in voices if voice else (PIPER, *espeak_speakers()[:1]):
        for first, rest in HESITATIONS:
            head, tail = spoken(first, said_by, lead_s=0.3), spoken(rest, said_by)
            out.append(("hesitation", np.concatenate([head, silence(pause_s), tail])))
    return out


def _loud_after(c: ScriptedClient, since: float) -> list[float]:
    return [
        t
        for t, pcm in c.got.audio
        if t > since and np.sqrt(np.mean(np.frombuffer(pcm, "<i2").astype(np.float64) ** 2)) > LOUD
    ]


async def speaker(
    ws_url: str, turns: list[tuple[str, np.ndarray]], push_to_talk: bool = False
) -> list[dict[str, Any]]:
    """One client plays its questions in turn; the figures of each turn. ``push_to_talk``:
    manual turns, each ended by ``end_turn`` at its last sound (the button let go), then
    no audio until the reply is over."""
    rows = []
    async with ScriptedClient(ws_url) as c:
        await c.start(turn_detection="manual" if push_to_talk else "auto")
        for kind, audio in turns:
            events_before = len(c.got.events)
            started = await c.speak(audio)
            speech_end = started + len(audio) / 16000
            if push_to_talk:
                await c.send(type="end_turn")
            mic = asyncio.create_task(c.speak(silence(0.0 if push_to_talk else 4.0)))
            for _ in range(600):  # up to 30 s for the reply to end
                # A reply stopped by the turn going on (its first half answered early)
                # ends after the speech too: the turn's own reply is one not stopped.
                if any(
                    e["type"] == "tts_end" and t > speech_end and not e.get("interrupted")
                    for t, e in c.got.events[events_before:]
                ):
                    break
                await asyncio.sleep(0.05)
            mic.cancel()
            events = [(t, e) for t, e in c.got.events[events_before:]]
            loud = _loud_after(c, started)
            early_start = any(
                e["type"] in ("reply", "tts_start") and t < speech_end for t, e in events
            )
            heard_early = any(t < speech_end for t in loud)
            after = [t for t in loud if t > speech_end]
            finals = [e for _, e in events if e["type"] == "asr" and e.get("final")]
            rows.append(
                {
                    "kind": kind,
                    "voice_to_voice_ms": (after[0] - speech_end) * 1000 if after else None,
                    "premature": early_start or heard_early,
                    "heard_early": heard_early,
                    "continued": any(
                        e["type"] == "barge_in" and e.get("action") == "stop" for _, e in events
                    ),
                    "asr_ms": float(finals[-1]["asr_ms"]) if finals else None,
                    "end_of_turn_ms": float(finals[-1]["end_of_turn_ms"]) if finals else None,
                    "transcript": finals[-1]["text"] if finals else "",
                    # What each judgement heard: a premature turn end shows why.
                    "heard": [
                        (e["text"], e.get("final", False)) for _, e in events if e["type"] == "asr"
                    ],
                }
            )
            await asyncio.sleep(0.5)
    return rows


async def conversations(
    ws_url: str,
    speakers: int,
    rounds: int,
    held_out: str | None = None,
    people: bool = False,
    pause_s: float = PAUSE_S,
    push_to_talk: bool = False,
    voice: str | None = None,
) -> dict[str, Any]:
    data = clips(held_out, people, pause_s, voice)
    complete = [c for c in data if c[0] == "complete"]
    paused = [c for c in data if c[0] == "hesitation"]
    # Every third turn has a hesitation; each speaker starts at a different question.
    plans = [
        [
            paused[(s + r // 3) % len(paused)]
            if r % 3 == 2
            else complete[(s * 5 + r) % len(complete)]
            for r in range(rounds)
        ]
        for s in range(speakers)
    ]
    per_speaker = await asyncio.gather(*(speaker(ws_url, plan, push_to_talk) for plan in plans))
    rows = [row for speaker_rows in per_speaker for row in speaker_rows]
    v2v = [r["voice_to_voice_ms"] for r in rows if r["voice_to_voice_ms"] is not None]
    whole = [v for r in rows if r["kind"] == "complete" and (v := r["voice_to_voice_ms"])]
    asr = [r["asr_ms"] for r in rows if r["asr_ms"] is not None]
    ended = [r["end_of_turn_ms"] for r in rows if r["end_of_turn_ms"] is not None]
    hesitations = [r for r in rows if r["kind"] == "hesitation"]
    return {
        "speakers": speakers,
        "voice": voice,
        "turns": len(rows),
        "voice_to_voice_ms": summary(v2v) if v2v else None,
        "complete_voice_to_voice_ms": summary(whole) if whole else None,
        "complete_premature": sum(r["premature"] for r in rows if r["kind"] == "complete"),
        "asr_ms": summary(asr) if asr else None,
        "end_of_turn_ms": summary(ended) if ended else None,
        "premature": sum(r["premature"] for r in rows),
        "heard_early": sum(r["heard_early"] for r in rows),
        "continued": sum(r["continued"] for r in rows),
        "hesitation_turns": len(hesitations),
        "hesitations_premature": sum(r["premature"] for r in hesitations),
        "unanswered": sum(r["voice_to_voice_ms"] is None for r in rows),
        "rows": rows,
    }


def sounds_over_a_reply() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Speech that barges in, and the acknowledgements, each in a voice of the bench's
    in turn (``interruptions``)."""
    voices = [*SPEAKERS, *espeak_speakers()]
    acknowledgements = {
        f"{text} ({voices[i % len(voices)]})": spoken(text, voices[i % len(voices)])
        for i, text in enumerate(ACKNOWLEDGEMENTS)
    }
    return spoken("Wait a moment please."), acknowledgements


async def run(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-conversation-"))
    worker = start_worker(
        ["--adapter", "piper", "--default-model", "piper-en-us-joe-medium"], tmp / "w.log"
    )
    results: dict[str, Any] = {"modes": {}, "interruptions": {}}
    configs = [
        (vad, mode, variant) for vad in args.vad for mode in args.modes for variant in args.variants
    ]
    try:
        for n, (vad, mode, variant) in enumerate(configs):
            talk = "push to talk" if args.push_to_talk else ""
            name = ", ".join(part for part in (mode, vad, variant, talk) if part)
            orchestrator = start_orchestrator(
                [worker.address],
                tmp / f"o-{n}.log",
                *("--end-of-turn", mode, "--vad", vad),
                *shlex.split(variant),
            )
            try:
                rows = []
                for voice in args.voices or [None]:
                    for speakers in args.speakers:
                        before = counters(orchestrator.url)
                        row = await conversations(
                            orchestrator.ws_url,
                            speakers,
                            args.rounds,
                            args.held_out,
                            args.people,
                            args.hesitation_s,
                            args.push_to_talk,
                            voice,
                        )
                        after = counters(orchestrator.url)
                        row["counts"] = {k: after[k] - before.get(k, 0) for k in after}
                        rows.append(row)
                results["modes"][name] = rows
                if mode == args.modes[0] and variant == args.variants[0]:
                    results["interruptions"][vad] = await interruptions(
                        orchestrator.ws_url, args.runs, *sounds_over_a_reply()
                    )
            finally:
                orchestrator.stop()
    finally:
        worker.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--modes",
        nargs="+",
        default=["transcript+smart-turn", "transcript", "silence"],
        help="--end-of-turn modes to compare (a fresh orchestrator each)",
    )
    parser.add_argument(
        "--vad", nargs="+", default=["silero"], choices=["silero", "webrtc"], help="VADs to compare"
    )
    parser.add_argument("--speakers", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--rounds", type=int, default=8, help="questions per speaker")
    parser.add_argument("--runs", type=int, default=10, help="barge-ins to time")
    parser.add_argument(
        "--variants",
        nargs="+",
        default=[""],
        help="orchestrator flags to compare on the same recordings, one string each, e.g. "
        "'' '--speculate-ms 0 --asr-window-step-s 5 --asr-pad-s 3' (now, and how it was "
        "before speculation at the gap and the 1 s window ladder)",
    )
    parser.add_argument(
        "--held-out",
        nargs="?",
        const="test2",
        choices=["test2", "test3"],
        help="hesitations from phrases written before the rules that judge them, cut from "
        "the whole sentence (bench_end_of_turn's test2, the default, or test3), instead of "
        "the four the rules were written against",
    )
    parser.add_argument(
        "--people",
        action="store_true",
        help="the complete turns are people's recorded utterances (recorded_speech: "
        "readings, commands, a telephone call), not the synthetic questions",
    )
    parser.add_argument(
        "--hesitation-s",
        type=float,
        default=PAUSE_S,
        help="the hesitations' pause mid-sentence (default 0.6; 1.3: longer than the full "
        "second that ends any turn, as a person's can be)",
    )
    parser.add_argument(
        "--push-to-talk",
        action="store_true",
        help="manual turns (start's turn_detection): each question ended by end_turn at its "
        "last sound, as a button let go; the end-of-turn judges are not asked",
    )
    parser.add_argument(
        "--voices",
        nargs="+",
        metavar="VOICE",
        help="each of these voices a user of its own, every turn in it, one run per voice "
        f"(e.g. {' '.join(SPEAKERS)} {' '.join(ESPEAK_SPEAKERS)}); default: the bench's "
        "voices taking turns as one user",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results" / "conversation.json")
    args = parser.parse_args()
    if args.voices and args.people:
        parser.error("--voices and --people: people's recordings have voices of their own")
    publish(asyncio.run(run(args)), args.out, render)


if __name__ == "__main__":
    main()
