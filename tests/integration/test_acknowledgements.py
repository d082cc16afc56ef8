"""A listener's acknowledgement over a reply, through a real orchestrator (Whisper,
Silero VAD, Smart Turn) and a real Piper worker: the reply pauses at its onset, then
goes on, and nothing answers it; with ``--barge-in-backchannels stop`` it stops the
reply and is answered, as any words are."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.support.orchestrator import ScriptedClient, silence, start_orchestrator
from tests.support.speech import speech_16k
from tests.support.whisper import transcribe
from tests.support.worker import WorkerProcess

pytestmark = pytest.mark.slow

LONG_REPLY = (
    "Here is a long answer that keeps going for a while, so that there is plenty of time to "
    "say something over it. It talks about the weather, the trains, the museums and the "
    "food, and it goes on until its very last word."
)


@pytest.fixture(params=["resume", "stop"])
def backchannels(
    request: pytest.FixtureRequest, piper_worker: WorkerProcess, tmp_path: Path
) -> Iterator[tuple[str, str]]:
    """The orchestrator's ws URL and its ``--barge-in-backchannels``."""
    flag = str(request.param)
    orchestrator = start_orchestrator(
        [piper_worker.address], tmp_path / "o.log", "--barge-in-backchannels", flag
    )
    yield orchestrator.ws_url, flag
    orchestrator.stop()


async def test_okay_over_a_reply_lets_it_go_on_unanswered(backchannels: tuple[str, str]) -> None:
    ws_url, flag = backchannels
    async with ScriptedClient(ws_url) as c:
        await c.start()
        await c.send(type="say", text=LONG_REPLY)
        await c.wait_for("tts_start", turn=1)
        okay = speech_16k("Okay.")
        mic = asyncio.create_task(c.speak(np.concatenate([silence(1.5), okay, silence(20.0)])))
        await c.wait_for("barge_in", action="pause")
        await c.wait_for("barge_in", action=flag, timeout_s=15)
        ended = await c.wait_for("tts_end", turn=1, timeout_s=40)
        if flag == "stop":
            await c.wait_for("tts_end", turn=2, timeout_s=20)
        mic.cancel()
    got = c.got
    (heard,) = [e["text"] for e in got.of("asr", final=True)]
    assert heard.lower().rstrip(".!") == "okay"
    if flag == "stop":
        assert ended["interrupted"] is True
        assert "".join(e["text"] for e in got.of("reply", turn=2)) == heard
        return
    assert ended["interrupted"] is False
    assert not got.of("tts_start", turn=2)  # nothing answered it
    resumed_at = got.time_of("barge_in", action="resume")
    assert len(got.pcm(resumed_at)) > 48000 * 2  # the reply went on for seconds after it
    assert "last word" in transcribe(got.pcm(resumed_at), 48000).lower()
