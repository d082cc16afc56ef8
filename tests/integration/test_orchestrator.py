"""Voice sessions through a real orchestrator and a real Piper worker (both subprocesses)."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import jiwer
import numpy as np
import pytest

from duplex_orchestrator import client
from duplex_orchestrator.vad import last_sound_s
from duplex_protocol.tts.v1 import tts_pb2 as pb
from tests.support.fake_llm import serve_completions, streamed_answer
from tests.support.orchestrator import (
    OrchestratorProcess,
    ScriptedClient,
    cough,
    silence,
    start_orchestrator,
    words_of,
)
from tests.support.speech import speech_16k
from tests.support.waiting import eventually
from tests.support.whisper import transcribe
from tests.support.worker import ROOT, WorkerProcess, connect, start_worker

pytestmark = pytest.mark.slow

QUESTION = "Could you please tell me a short story about a friendly dog?"
LONG_REPLY = (
    "Here is a long answer that keeps going for a while, so that there is plenty of time to "
    "interrupt it. It talks about the weather, the trains, the museums and the food, and it "
    "does not stop until somebody cuts in."
)


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    log = tmp_path_factory.mktemp("orch-worker") / "worker.log"
    process = start_worker(
        ["--adapter", "piper,mock", "--default-model", "piper-en-us-joe-medium"], log
    )
    yield process
    process.stop()


@pytest.fixture(scope="module")
def orchestrator(
    worker: WorkerProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OrchestratorProcess]:
    log = tmp_path_factory.mktemp("orch") / "orchestrator.log"
    process = start_orchestrator([worker.address], log)
    yield process
    process.stop()


def wer(expected: str, heard: str) -> float:
    return float(jiwer.wer(words_of(expected), words_of(heard)))


async def test_a_spoken_question_gets_an_echo_reply_that_is_heard_back(
    orchestrator: OrchestratorProcess,
) -> None:
    convo = await client.talk(orchestrator.ws_url, "", speech_16k(QUESTION), timeout_s=30)
    heard = convo.texts("asr")
    assert len(heard) == 1
    assert wer(QUESTION, heard[0]) <= 0.15, heard
    assert wer(QUESTION, "".join(convo.texts("reply"))) <= 0.1
    assert wer(QUESTION, transcribe(bytes(convo.audio), 48000)) <= 0.15
    latency = next(e for e in convo.events if e["type"] == "latency")
    assert latency["voice_to_voice_ms"] > latency["first_audio_ms"] > 0


async def test_push_to_talk_is_one_turn_through_a_long_pause_with_no_silence_after(
    orchestrator: OrchestratorProcess,
) -> None:
    """Half a question, 1.5 s of silence (past the second that ends a turn), the rest,
    cut where the speech ends; then ``end_turn`` and no more audio. With manual turns
    the pause ends nothing, the silence after never comes, and the whole question is
    answered as one turn."""
    first, rest = "Could you please tell me", "a short story about a friendly dog?"
    speech = np.concatenate([speech_16k(first), silence(1.5), speech_16k(rest)])
    speech = speech[: int(last_sound_s(speech) * 16000)]
    convo = await client.talk(orchestrator.ws_url, "", speech, timeout_s=30, push_to_talk=True)
    assert convo.ended, convo.events
    (heard,) = convo.texts("asr")
    assert wer(QUESTION, heard) <= 0.15, heard
    assert wer(QUESTION, "".join(convo.texts("reply"))) <= 0.15
    assert not [e for e in convo.events if e["type"] == "error"]


async def test_talk_with_no_words_in_the_wav_ends_without_waiting_for_a_reply(
    orchestrator: OrchestratorProcess,
) -> None:
    """A WAV of a cough and silence: ``talk`` stops soon after it, not at its timeout."""
    audio = np.concatenate([silence(0.5), cough(level=0.8), silence(0.5)])
    convo = await client.talk(orchestrator.ws_url, "", audio, timeout_s=30)
    assert convo.nothing_to_answer
    assert not convo.ended
    assert not convo.audio
    assert not any(convo.texts("asr")), convo.events


async def test_talk_answers_every_question_in_the_wav_before_it_ends(
    orchestrator: OrchestratorProcess,
) -> None:
    """Two turns, far apart: ``talk`` does not stop at the first reply's end."""
    first, second = "What time is it?", "Please open the window."
    audio = np.concatenate([speech_16k(first), silence(3.0), speech_16k(second)])
    convo = await client.talk(orchestrator.ws_url, "", audio, timeout_s=40)
    assert convo.ended
    heard = convo.texts("asr")
    assert len(heard) == 2, heard
    assert wer(first, heard[0]) <= 0.2, heard
    assert wer(second, heard[1]) <= 0.2, heard
    assert wer(first + " " + second, " ".join(convo.texts("reply"))) <= 0.2
    assert [e.get("interrupted") for e in convo.events if e["type"] == "tts_end"] == [False, False]


async def test_barge_in_with_words_stops_the_reply_and_answers(
    orchestrator: OrchestratorProcess,
) -> None:
    interruption = "Please stop talking now."
    async with ScriptedClient(orchestrator.ws_url) as c:
        await c.start()
        await c.send(type="say", text=LONG_REPLY)
        await c.wait_for("tts_start", turn=1)
        mic = asyncio.create_task(
            c.speak(np.concatenate([silence(1.5), speech_16k(interruption), silence(4.0)]))
        )
        pause = await c.wait_for("barge_in", action="pause")
        assert pause["flush"] is True
        await c.wait_for("barge_in", action="stop", timeout_s=15)
        ended = await c.wait_for("tts_end", turn=1)
        await c.wait_for("tts_end", turn=2, timeout_s=20)
        mic.cancel()
    got = c.got
    assert ended["interrupted"] is True
    assert wer(interruption, got.of("asr", final=True)[0]["text"]) <= 0.34
    assert wer(interruption, "".join(e["text"] for e in got.of("reply", turn=2))) <= 0.34
    # Once told to flush, the client gets no more audio of the interrupted reply.
    paused_at = got.time_of("barge_in", action="pause")
    stopped_at = got.time_of("barge_in", action="stop")
    assert len(got.pcm(paused_at + 0.05, stopped_at)) == 0
    reply2 = got.pcm(got.time_of("tts_start", turn=2))
    assert wer(interruption, transcribe(reply2, 48000)) <= 0.34


async def test_a_cough_over_the_reply_does_not_interrupt_it(
    orchestrator: OrchestratorProcess,
) -> None:
    # Silero VAD (the default) hears no speech in a cough: no barge-in at all.
    async with ScriptedClient(orchestrator.ws_url) as c:
        await c.start()
        await c.send(type="say", text=LONG_REPLY)
        await c.wait_for("tts_start", turn=1)
        mic = asyncio.create_task(c.speak(np.concatenate([silence(1.5), cough(), silence(20.0)])))
        ended = await c.wait_for("tts_end", turn=1, timeout_s=30)
        mic.cancel()
    got = c.got
    assert ended["interrupted"] is False
    assert not got.of("barge_in")
    assert not got.of("asr")
    assert wer(LONG_REPLY, transcribe(got.pcm(), 48000)) <= 0.25


async def test_with_webrtcvad_a_cough_pauses_the_reply_and_it_resumes(
    worker: WorkerProcess, tmp_path: Path
) -> None:
    # webrtcvad takes a cough for speech: the false barge-in is paused, then resumed
    # when Whisper finds no words in it.
    orchestrator = start_orchestrator([worker.address], tmp_path / "o.log", "--vad", "webrtc")
    try:
        async with ScriptedClient(orchestrator.ws_url) as c:
            await c.start()
            await c.send(type="say", text=LONG_REPLY)
            await c.wait_for("tts_start", turn=1)
            mic = asyncio.create_task(
                c.speak(np.concatenate([silence(1.5), cough(), silence(20.0)]))
            )
            await c.wait_for("barge_in", action="pause")
            await c.wait_for("barge_in", action="resume", timeout_s=15)
            ended = await c.wait_for("tts_end", turn=1, timeout_s=30)
            mic.cancel()
    finally:
        orchestrator.stop()
    got = c.got
    assert ended["interrupted"] is False
    assert got.of("asr", final=True)[0]["text"] == ""
    assert not got.of("tts_start", turn=2)
    resumed_at = got.time_of("barge_in", action="resume")
    assert len(got.pcm(resumed_at)) > 48000 * 2  # the reply went on for seconds after RESUME
    assert wer(LONG_REPLY, transcribe(got.pcm(), 48000)) <= 0.25


async def test_stream_tts_text_deltas_are_spoken(orchestrator: OrchestratorProcess) -> None:
    """The first sentence is heard while the reply's text is still coming: the second
    is sent only once the first one's audio has arrived."""
    first, second = "Streaming text arrives in small pieces.", "It is spoken as it comes."
    async with ScriptedClient(orchestrator.ws_url) as c:
        await c.start()
        for i, word in enumerate(first.split(" ")):
            await c.send(type="text", text=(" " if i else "") + word, final=False)
            await asyncio.sleep(0.05)
        await eventually(lambda: bool(c.got.audio), 30)  # the text is not final yet
        for i, word in enumerate(second.split(" ")):
            last = i == len(second.split(" ")) - 1
            await c.send(type="text", text=" " + word, final=last)
        await c.wait_for("tts_end", turn=1, timeout_s=30)
    assert wer(f"{first} {second}", transcribe(c.got.pcm(), 48000)) <= 0.1


async def test_model_switch_loads_once_and_applies_from_the_next_turn(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Piper answers while Kokoro (a real second family) loads; the next turn is Kokoro's."""
    tmp = tmp_path_factory.mktemp("switch")
    worker = start_worker(
        [
            "--adapter",
            "piper,kokoro",
            "--default-model",
            "piper-en-us-joe-medium",
            "--cache-dir",
            str(ROOT / ".cache" / "duplex"),
        ],
        tmp / "w.log",
    )
    orchestrator = start_orchestrator([worker.address], tmp / "o.log")
    try:
        await switch_models(orchestrator, worker, KOKORO)
    finally:
        orchestrator.stop()
        worker.stop()
    assert orchestrator.log().count('"event": "route_load"') == 1
    assert worker.log().count(f'"event": "model_load", "model": "{KOKORO}"') == 1


KOKORO = "kokoro-82m-en-kumo"


async def switch_models(
    orchestrator: OrchestratorProcess, worker: WorkerProcess, new_model: str
) -> None:
    async with ScriptedClient(orchestrator.ws_url) as c:
        ready = await c.start()
        assert {"piper-en-us-joe-medium", new_model} <= {m["id"] for m in ready["models"]}
        await c.send(type="model", model=new_model)
        switch = await c.wait_for("model")
        assert switch == {
            "type": "model",
            "requested": new_model,
            "active": "piper-en-us-joe-medium",
            "loading": True,
        }
        await c.send(type="say", text="Still the old voice.")
        first = await c.wait_for("tts_start", turn=1)
        assert first["model"] == "piper-en-us-joe-medium"
        await c.wait_for("tts_end", turn=1)
        for _ in range(300):  # the load finishes in the background
            async with connect(worker.address) as stub:
                listed = {m.id: m for m in (await stub.ListModels(pb.ListModelsRequest())).models}
            if listed[new_model].state == pb.MODEL_STATE_READY:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # one registry poll
        started = c.got.events[-1][0]
        await c.send(type="say", text="Now the new voice.")
        second = await c.wait_for("tts_start", turn=2)
        assert second["model"] == new_model
        await c.wait_for("tts_end", turn=2)
        reply = c.got.pcm(start=started)
    assert wer("Now the new voice.", transcribe(reply, 48000)) <= 0.25


async def test_bad_input_gets_clear_errors_and_the_session_goes_on(
    orchestrator: OrchestratorProcess,
) -> None:
    async with ScriptedClient(orchestrator.ws_url) as c:
        await c.send_raw(b"\x00" * 640)
        await c.send_raw("{not json")
        await c.send(type="dance")
        await c.send(type="start", sample_rate=12345)
        await c.start(model="")
        await c.send(type="start")
        await c.send_raw(b"\x00" * 100)
        await c.send(type="model", model="no-such-voice")
        await c.send(type="say", text=42)
        await c.send(type="say", text="Still working.")
        await c.wait_for("tts_end", turn=1, timeout_s=20)
    codes = [e["code"] for e in c.got.of("error")]
    assert codes == [
        "not_started",
        "bad_json",
        "unknown_type",
        "bad_sample_rate",
        "already_started",
        "bad_audio_frame",
        "unknown_model",
        "bad_message",
    ]
    frame_error = c.got.of("error", code="bad_audio_frame")[0]["message"]
    assert "640 bytes" in frame_error
    assert "got 100" in frame_error
    assert c.got.pcm()


async def test_a_client_vanishing_mid_reply_frees_its_worker_session(
    orchestrator: OrchestratorProcess, worker: WorkerProcess
) -> None:
    async with connect(worker.address) as stub:
        before = (await stub.GetCapabilities(pb.GetCapabilitiesRequest())).active_sessions
    async with ScriptedClient(orchestrator.ws_url) as c:
        await c.start()
        await c.send(type="say", text=LONG_REPLY)
        await c.wait_for("tts_start", turn=1)
        await asyncio.sleep(0.5)
    for _ in range(50):
        async with connect(worker.address) as stub:
            caps = await stub.GetCapabilities(pb.GetCapabilitiesRequest())
        if caps.active_sessions == before:
            break
        await asyncio.sleep(0.1)
    assert caps.active_sessions == before
    convo = await client.say(orchestrator.ws_url, "", "Others go on.")  # the orchestrator is fine
    assert convo.audio


async def test_an_openai_compatible_llm_streams_the_reply(
    worker: WorkerProcess, tmp_path_factory: pytest.TempPathFactory
) -> None:
    answer = ["The answer", " is the blue", " door.", " Anything", " else?"]
    seen: list[dict[str, object]] = []
    runner, llm_url = await serve_completions(streamed_answer(*answer, every_s=0.05, seen=seen))
    log = tmp_path_factory.mktemp("orch-llm") / "orchestrator.log"
    llm = ["--llm-url", llm_url, "--llm-model", "tiny", "--llm-instructions", "Take orders."]
    orch = start_orchestrator([worker.address], log, *llm)
    try:
        convo = await client.talk(orch.ws_url, "", speech_16k(QUESTION), timeout_s=30)
    finally:
        orch.stop()
        await runner.cleanup()
    assert seen[0]["model"] == "tiny"
    assert seen[0]["stream"] is True
    messages = seen[0]["messages"]
    assert isinstance(messages, list)
    assert messages[0] == {"role": "system", "content": "Take orders."}
    assert wer(QUESTION, messages[-1]["content"]) <= 0.1
    assert "".join(convo.texts("reply")) == "".join(answer)
    assert wer("".join(answer), transcribe(bytes(convo.audio), 48000)) <= 0.2


async def test_a_worker_killed_mid_reply_is_reported_and_the_turn_retried_on_another(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    tmp = tmp_path_factory.mktemp("two-workers")
    workers = [
        start_worker(["--adapter", "mock", "--default-model", "mock"], tmp / f"w{i}.log")
        for i in range(2)
    ]
    orch = start_orchestrator(
        [w.address for w in workers], tmp / "o.log", "--default-model", "mock"
    )
    try:
        async with ScriptedClient(orch.ws_url) as c:
            await c.start()
            await c.send(type="say", text=LONG_REPLY)
            first = await c.wait_for("tts_start", turn=1)
            await asyncio.sleep(0.5)
            victim = next(w for w in workers if w.address.split(":")[1] in first["worker"])
            victim.process.kill()
            error = await c.wait_for("error", code="tts_failed", timeout_s=10)
            assert "retrying elsewhere" in error["message"]
            starts = c.got.of("tts_start", turn=1)
            for _ in range(100):
                starts = c.got.of("tts_start", turn=1)
                if len(starts) == 2:
                    break
                await asyncio.sleep(0.05)
            assert len(starts) == 2
            assert starts[1]["worker"] != first["worker"]
            await c.wait_for("tts_end", turn=1, timeout_s=30)
            await c.send(type="say", text="And the next turn works.")
            await c.wait_for("tts_end", turn=2, timeout_s=20)
    finally:
        orch.stop()
        for w in workers:
            w.stop()


def test_api_key_is_required_outside_dev_mode(
    worker: WorkerProcess, tmp_path_factory: pytest.TempPathFactory
) -> None:
    log = tmp_path_factory.mktemp("orch-key") / "orchestrator.log"
    orch = start_orchestrator([worker.address], log, "--api-key", "s3cret")
    try:
        with pytest.raises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(f"{orch.url}/api/models", timeout=5)
        assert denied.value.code == 401
        request = urllib.request.Request(
            f"{orch.url}/api/models", headers={"Authorization": "Bearer s3cret"}
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200
        with urllib.request.urlopen(f"{orch.url}/healthz", timeout=5) as response:
            assert response.status == 200
        with urllib.request.urlopen(f"{orch.url}/metrics", timeout=5) as response:
            exposition = response.read().decode()  # open without a key, for Prometheus
        assert 'duplex_workers{state="ready"} 1.0' in exposition
        assert 'duplex_workers{state="not_ready"} 0.0' in exposition
        convo = asyncio.run(client.say(orch.ws_url, "s3cret", "With a key."))
        assert convo.audio
        with pytest.raises(Exception, match="401"):
            asyncio.run(client.say(orch.ws_url, "wrong", "No."))
    finally:
        orch.stop()
    assert "DEV MODE" not in orch.log()


async def test_worker_sessions_live_only_as_long_as_a_reply(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Each reply opens a worker session and ends it: nothing idles in a worker's slots,
    and a worker's idle reaper never has to step in."""
    tmp = tmp_path_factory.mktemp("per-reply")
    worker = start_worker(["--adapter", "mock", "--default-model", "mock"], tmp / "w.log")
    orch = start_orchestrator([worker.address], tmp / "o.log", "--default-model", "mock")
    try:
        async with connect(worker.address) as stub, ScriptedClient(orch.ws_url) as c:
            await c.start()
            for turn in (1, 2):
                await c.send(type="say", text=f"Turn number {turn}.")
                ended = await c.wait_for("tts_end", turn=turn)
                assert ended["frames"] > 10

                async def idle() -> bool:
                    caps = await stub.GetCapabilities(pb.GetCapabilitiesRequest())
                    return caps.active_sessions == 0

                await eventually(idle, 10)
        assert c.got.of("error") == []
        assert worker.log().count('"event": "session_end"') == 2
        assert '"reason": "idle timeout"' not in worker.log()
    finally:
        orch.stop()
        worker.stop()
