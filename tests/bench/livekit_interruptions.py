"""Sounds over the LiveKit agent's reply, for ``bench_livekit --interruptions``.

A long reply is said (``session.say``) into an output that pauses as a room's does;
a second into it the scripted microphone plays a sound: speech (barge-in: its first
sound → the output paused or cleared, AgentSession's interruption at duplex's
onset), noise (a cough, keyboard clicks, quiet music: it should not stop the reply)
or a listener's acknowledgement ("Okay.": the agent drops it, and the reply goes
on). As ``interruptions`` measures duplex's own sessions.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import numpy as np
from livekit.agents import UserInputTranscribedEvent

from duplex_livekit import voice_agent
from tests.bench.bench_conversation import sounds_over_a_reply
from tests.bench.bench_orchestrator import LONG
from tests.bench.bench_worker import summary
from tests.bench.interruptions import noises
from tests.support.orchestrator import silence

if TYPE_CHECKING:
    from tests.bench.bench_livekit import Agent


async def over_a_reply(a: Agent, sound: np.ndarray) -> tuple[float | None, bool]:
    """Play ``sound`` a second into a long reply: how long after its first frame the
    output was paused or cleared (None: it was not), and whether the reply was cut."""
    loop = asyncio.get_running_loop()
    asked = loop.time()
    reply = a.session.say(LONG)
    for _ in range(3000):  # up to 30 s for the reply's first sound
        if any(t > asked for t in a.output.loud_at):
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(1.0)
    a.mic.ended.clear()
    a.mic.speak(np.concatenate([sound, silence(0.02)]))
    await a.mic.ended.wait()
    began = a.mic.began_at
    assert began is not None
    await asyncio.wait_for(reply.wait_for_playout(), timeout=30)
    stopped = [t for t in a.output.stopped_at if t >= began]
    cut = reply.interrupted
    await asyncio.sleep(2.0)  # words said over it are a turn: its reply, if any, is stopped
    await a.session.interrupt()
    await asyncio.sleep(1.0)
    return ((stopped[0] - began) * 1000 if stopped else None), cut


async def interruptions(a: Agent, runs: int) -> dict[str, Any]:
    """Barge-in latency (speech over a reply, ``runs`` times), noise that paused or
    stopped the reply, acknowledgements that stopped it."""
    await a.session.start(agent=voice_agent(), record=False)
    speech, acknowledgements = sounds_over_a_reply()
    latency: list[float] = []
    missed = 0
    for _ in range(runs):
        after_ms, _ = await over_a_reply(a, speech)
        if after_ms is None:
            missed += 1
        else:
            latency.append(after_ms)
    noise_paused: dict[str, int] = {}
    noise_stopped: dict[str, int] = {}
    for name, sound in noises().items():
        after_ms, cut = await over_a_reply(a, sound)
        noise_paused[name], noise_stopped[name] = int(after_ms is not None), int(cut)
    heard: list[str] = []

    @a.session.on("user_input_transcribed")
    def _heard(event: UserInputTranscribedEvent) -> None:
        if event.is_final:
            heard.append(event.transcript)

    stops: dict[str, int] = {}
    acknowledged: dict[str, list[str]] = {}
    for name, sound in acknowledgements.items():
        heard.clear()
        stops[name] = int((await over_a_reply(a, sound))[1])
        acknowledged[name] = list(heard)  # words that reached AgentSession (not a dropped "okay")
    return {
        "barge_in_ms": summary(latency) if latency else None,
        "barge_ins_missed": missed,
        "false_barge_in_pauses": noise_paused,
        "false_barge_in_stops": noise_stopped,
        "acknowledgement_stops": stops,
        "acknowledgements_heard": acknowledged,
    }


def render_interruptions(results: dict[str, Any]) -> str:
    r = results["interruptions"]
    barge = r["barge_in_ms"]
    lines = [
        f"barge-in (first sound → output paused): p50 {barge['p50']:.0f} ms, "
        f"p95 {barge['p95']:.0f} ms; missed {r['barge_ins_missed']}"
        if barge
        else f"barge-in: every one missed ({r['barge_ins_missed']})",
        f"noise that paused the reply: {r['false_barge_in_pauses']}",
        f"noise that stopped the reply: {r['false_barge_in_stops']}",
        f"acknowledgements that stopped the reply: {sum(r['acknowledgement_stops'].values())} "
        f"of {len(r['acknowledgement_stops'])}",
    ]
    for name, texts in r["acknowledgements_heard"].items():
        went_on = "stopped" if r["acknowledgement_stops"][name] else "went on"
        lines.append(f"  {name}: heard {texts}, {went_on}")
    return "\n".join(lines)
