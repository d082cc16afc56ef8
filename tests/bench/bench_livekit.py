"""Benchmark the LiveKit agent's turns, offline: ``python -m tests.bench.bench_livekit``.

The AgentSession a room job runs (``duplex_livekit.voice_session``), with no room
and no server: a scripted microphone plays ``bench_conversation``'s questions in
real time (complete questions in every voice, and questions with a 0.6 s
hesitation that must not be cut), a real Piper worker speaks the replies,
Whisper base as deployed (the fitted window), Silero, Smart Turn, the echo
bridge. Once with duplex's judges ending the turns (the agent's default), once
with ``--end-of-turn silence`` (every turn ends after the VAD's 500 ms, as the
agent did before). Per turn:

- voice_to_voice_ms: the last sound played → the first loud reply frame
  AgentSession hands to the room's output;
- premature: the agent started thinking (a turn was committed) or a reply sounded
  before the user finished.

Each reply is interrupted at its first loud frame, then a second of silence.
``--interruptions``: instead, sounds over a long reply, with an output that pauses
as a room's does (``livekit_interruptions``): speech (barge-in, its first sound → the
output paused), noise and a listener's acknowledgements (neither should stop it);
writes ``livekit-interruptions.json``.
``--push-to-talk``: manual turns (the participant's ``duplex.turn_detection``), the
client sending ``end_turn`` over the data channel's control as each question's last
frame has played (a button released).
Writes ``bench-results/livekit.json`` (``livekit-push-to-talk.json``).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from livekit import rtc
from livekit.agents import AgentSession, AgentStateChangedEvent, UserInputTranscribedEvent

from duplex_livekit import Control, DuplexTTS, VoiceParts, voice_agent, voice_session
from duplex_orchestrator import prosody
from duplex_orchestrator.app import end_of_turn, make_transcriber
from duplex_orchestrator.config import OrchestratorConfig
from duplex_orchestrator.smart_turn import SmartTurn
from tests.bench.bench_conversation import clips
from tests.bench.bench_orchestrator import LOUD
from tests.bench.bench_worker import publish, summary
from tests.support.livekit_input import ScriptedMicrophone
from tests.support.livekit_output import PlayedAudioOutput
from tests.support.speech import ROOT
from tests.support.worker import start_worker


class TimedMicrophone(ScriptedMicrophone):
    """The scripted microphone, noting when the queued audio's first frame began and
    its last frame has played."""

    def __init__(self) -> None:
        super().__init__()
        self.began_at: float | None = None
        self.ended_at: float | None = None
        self.ended = asyncio.Event()
        self._in_audio = False

    async def __anext__(self) -> rtc.AudioFrame:
        speaking = self.speaking
        frame = await super().__anext__()
        now = asyncio.get_running_loop().time()
        if speaking and not self._in_audio:
            self.began_at, self._in_audio = now, True
        if speaking and not self.speaking:
            self.ended_at, self._in_audio = now + frame.duration, False
            self.ended.set()
        return frame


class TimedOutput(PlayedAudioOutput):
    """The room's output, noting when each loud frame was handed to it, and when the
    agent paused or cleared it (``can_pause``: it may pause, as a room's does)."""

    def __init__(self, can_pause: bool = False) -> None:
        super().__init__(can_pause=can_pause)
        self.loud_at: list[float] = []
        self.stopped_at: list[float] = []

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        samples = np.frombuffer(frame.data, "<i2").astype(np.float64)
        if samples.size and np.sqrt(np.mean(samples**2)) > LOUD:
            self.loud_at.append(asyncio.get_running_loop().time())
        await super().capture_frame(frame)

    def pause(self) -> None:
        self.stopped_at.append(asyncio.get_running_loop().time())
        super().pause()

    def clear_buffer(self) -> None:
        self.stopped_at.append(asyncio.get_running_loop().time())
        super().clear_buffer()


async def _no_answer(payload: bytes) -> None:
    raise AssertionError(f"the control was refused: {payload!r}")


@dataclass
class Agent:
    """The room job's AgentSession, with the scripted microphone and the timed output."""

    session: AgentSession[None]
    voice: DuplexTTS
    parts: VoiceParts
    mic: TimedMicrophone
    output: TimedOutput


@asynccontextmanager
async def agent(config: OrchestratorConfig, can_pause: bool = False) -> AsyncIterator[Agent]:
    """The AgentSession a room job builds from ``config``, not started yet; closed after."""
    judged = end_of_turn(config).mode != "silence"
    recognizer = make_transcriber(config)
    parts = VoiceParts.from_config(config, recognizer, SmartTurn() if judged else None)
    prosody.warm_up()
    await parts.registry.refresh()
    session, voice = voice_session(parts)
    mic, output = TimedMicrophone(), TimedOutput(can_pause)
    session.input.audio, session.output.audio = mic, output
    try:
        yield Agent(session, voice, parts, mic, output)
    finally:
        await session.aclose()
        await output.aclose()
        await voice.aclose()
        await parts.registry.close()


async def conversation(
    config: OrchestratorConfig, turns: list[tuple[str, np.ndarray]], push_to_talk: bool = False
) -> list[dict[str, Any]]:
    """One session, built as the room job builds it, plays every question in turn; the
    figures of each turn."""
    async with agent(config) as a:
        return await _conversation(a, turns, push_to_talk)


async def _conversation(
    a: Agent, turns: list[tuple[str, np.ndarray]], push_to_talk: bool
) -> list[dict[str, Any]]:
    session, mic, output = a.session, a.mic, a.output
    thinking: list[float] = []
    heard: list[str] = []

    @session.on("agent_state_changed")
    def _state(event: AgentStateChangedEvent) -> None:
        if event.new_state == "thinking":
            thinking.append(asyncio.get_running_loop().time())

    @session.on("user_input_transcribed")
    def _heard(event: UserInputTranscribedEvent) -> None:
        if event.is_final:
            heard.append(event.transcript)

    await session.start(agent=voice_agent(), record=False)
    control = Control(session, a.voice, _no_answer, a.parts.turns)
    if push_to_talk:
        await control.turn_detection("manual")
    loop = asyncio.get_running_loop()
    rows: list[dict[str, Any]] = []
    for kind, audio in turns:
        started = loop.time()
        mic.ended.clear()
        heard.clear()
        mic.speak(audio)
        await mic.ended.wait()
        assert mic.ended_at is not None
        if push_to_talk:
            await asyncio.sleep(max(0.0, mic.ended_at - loop.time()))
            await control.handle(b'{"type": "end_turn"}')
        speech_end = mic.ended_at
        for _ in range(800):  # up to 8 s for the reply's first sound
            if any(t > speech_end for t in output.loud_at):
                break
            await asyncio.sleep(0.01)
        after = [t for t in output.loud_at if t > speech_end]
        early = [t for t in (*thinking, *output.loud_at) if started < t < speech_end]
        rows.append(
            {
                "kind": kind,
                "voice_to_voice_ms": (after[0] - speech_end) * 1000 if after else None,
                "premature": bool(early),
                "heard": list(heard),  # Whisper's words, utterance by utterance
            }
        )
        await session.interrupt()
        await asyncio.sleep(1.0)
    return rows


def report(rows: list[dict[str, Any]]) -> dict[str, Any]:
    def v2v(kind: str | None = None) -> dict[str, float]:
        return summary(
            [
                r["voice_to_voice_ms"]
                for r in rows
                if r["voice_to_voice_ms"] is not None and kind in (None, r["kind"])
            ]
        )

    return {
        "turns": len(rows),
        "voice_to_voice_ms": v2v(),
        "complete_ms": v2v("complete"),
        "no_reply": sum(r["voice_to_voice_ms"] is None for r in rows),
        "premature": sum(r["premature"] for r in rows),
        "hesitations": sum(r["kind"] == "hesitation" for r in rows),
        "rows": rows,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-livekit-"))
    worker = start_worker(
        ["--adapter", "piper", "--default-model", "piper-en-us-joe-medium"], tmp / "w.log"
    )
    turns = clips() * args.rounds
    results: dict[str, Any] = {}
    try:
        if args.interruptions:
            from tests.bench.livekit_interruptions import interruptions

            config = OrchestratorConfig(dev=True, workers=[worker.address])
            async with agent(config, can_pause=True) as a:
                return {"interruptions": await interruptions(a, args.runs)}
        for mode in args.modes:
            config = OrchestratorConfig(dev=True, end_of_turn=mode, workers=[worker.address])
            name = f"{mode}, push to talk" if args.push_to_talk else mode
            results[name] = report(await conversation(config, turns, args.push_to_talk))
    finally:
        worker.stop()
    return results


def render(results: dict[str, Any]) -> str:
    lines = ["| turns ended by | voice-to-voice p50 / p95 ms | complete turns | premature |"]
    lines.append("|---|---|---|---|")
    for mode, r in results.items():
        both, complete = r["voice_to_voice_ms"], r["complete_ms"]
        lines.append(
            f"| {mode} | {both['p50']:.0f} / {both['p95']:.0f} | "
            f"{complete['p50']:.0f} / {complete['p95']:.0f} | "
            f"{r['premature']} of {r['turns']} ({r['hesitations']} hesitations); "
            f"no reply {r['no_reply']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--modes",
        nargs="+",
        default=["transcript+smart-turn", "silence"],
        help="--end-of-turn modes to compare (silence: the VAD's 500 ms alone)",
    )
    parser.add_argument("--rounds", type=int, default=1, help="times each question is asked")
    parser.add_argument(
        "--push-to-talk",
        action="store_true",
        help="manual turns: the client sends end_turn as each question's last frame has played",
    )
    parser.add_argument(
        "--interruptions",
        action="store_true",
        help="speech, noise and acknowledgements over a reply (the judges' agent)",
    )
    parser.add_argument("--runs", type=int, default=10, help="barge-ins to time")
    args = parser.parse_args()
    if args.interruptions:
        from tests.bench.livekit_interruptions import render_interruptions

        name = "livekit-interruptions.json"
        publish(asyncio.run(run(args)), ROOT / "bench-results" / name, render_interruptions)
        return
    name = "livekit-push-to-talk.json" if args.push_to_talk else "livekit.json"
    publish(asyncio.run(run(args)), ROOT / "bench-results" / name, render)


if __name__ == "__main__":
    main()
