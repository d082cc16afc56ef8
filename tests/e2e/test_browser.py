"""The browser client in headless Chromium with a scripted microphone (a WAV file).

Debian's Chromium, driven by Playwright's Python package through
``executable_path`` (no browser download). The fake microphone plays: a
question, a pause while the echo reply plays, then an interruption. The page
talks WebRTC (its default) over loopback only: the orchestrator offers
127.0.0.1 alone and drops the browser's other candidates, and Chromium is
allowed loopback candidates; a server that cannot take its offer sends it to
the WebSocket.
"""

from __future__ import annotations

import math
import shutil
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soxr
from playwright.sync_api import BrowserContext, Playwright, sync_playwright

from tests.support.orchestrator import OrchestratorProcess, start_orchestrator, words_of
from tests.support.speech import speech_16k, write_wav
from tests.support.worker import WorkerProcess, start_worker

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# About 6 s of speech: its echo reply lasts as long, so an interruption 6 s after
# the question lands inside the reply whenever the reply starts within ~5.5 s
# (a loaded 2-core CI machine has taken 4 s; an idle one takes about 1 s).
QUESTION = (
    "Could you please tell me a long story about a friendly dog who lives on a farm "
    "and likes to run across the green fields every morning?"
)
INTERRUPTION = "Stop right there please."
CLIP_WORDS = "This is my own voice, recorded for the agent to speak with from now on."
SCREENSHOT = Path(__file__).resolve().parents[2] / ".cache" / "browser-test.png"


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[WorkerProcess, OrchestratorProcess]]:
    tmp = tmp_path_factory.mktemp("browser-stack")
    worker = start_worker(
        ["--adapter", "piper", "--default-model", "piper-en-us-joe-medium"], tmp / "w.log"
    )
    orchestrator = start_orchestrator([worker.address], tmp / "o.log")
    yield worker, orchestrator
    orchestrator.stop()
    worker.stop()


def microphone_track(path: Path) -> Path:
    """The WAV the fake microphone plays: the question, a pause into the reply, the interruption."""
    question = speech_16k(QUESTION, lead_s=0.0, tail_s=0.0)
    interruption = speech_16k(INTERRUPTION, lead_s=0.0, tail_s=0.0)
    q_start = 1.5
    gap = 6.0  # the reply starts 1 to 5 s after the question and lasts about 6 s
    parts = [
        np.zeros(int(q_start * 16000), np.int16),
        question,
        np.zeros(int(gap * 16000), np.int16),
        interruption,
        np.zeros(25 * 16000, np.int16),
    ]
    return microphone_wav(path, np.concatenate(parts))


def microphone_wav(path: Path, track16k: np.ndarray) -> Path:
    """``track16k`` as the fake microphone's file: 48 kHz, as a device gives it."""
    track48 = soxr.resample(track16k.astype(np.float32), 16000, 48000)
    return write_wav(path, np.clip(track48, -32768, 32767).astype(np.int16), 48000)


def launch(playwright: Playwright, tmp_path: Path, microphone: Path) -> BrowserContext:
    """Debian's Chromium, headless, a new profile, the microphone playing ``microphone``."""
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed: run `make browser` (make test does)")
    return playwright.chromium.launch_persistent_context(
        str(tmp_path / "profile"),
        executable_path=CHROMIUM,
        headless=True,
        args=chromium_args(microphone),
    )


def chromium_args(microphone: Path) -> list[str]:
    return [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={microphone}",
        "--autoplay-policy=no-user-gesture-required",
        "--allow-loopback-in-peer-connection",  # a 127.0.0.1 ICE candidate: media on loopback
    ]


def test_browser_talks_over_webrtc_hears_the_reply_and_interrupts_it(
    stack: tuple[WorkerProcess, OrchestratorProcess], tmp_path: Path
) -> None:
    _, orchestrator = stack
    wav = microphone_track(tmp_path / "mic.wav")
    clip = write_wav(tmp_path / "clip.wav", speech_16k(CLIP_WORDS), 16000)
    with sync_playwright() as playwright:
        context = launch(playwright, tmp_path, wav)
        try:
            page = context.new_page()
            failed: list[str] = []  # every request the page makes must be answered
            page.on(
                "response",
                lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None,
            )
            page.goto(orchestrator.url)
            page.wait_for_function(
                "document.querySelectorAll('#model option').length > 0", timeout=20_000
            )
            page.click("#connect")
            stats = wait_for(page, "s => s.transcripts.length >= 1", 30)
            stats = wait_for(page, "s => s.events.includes('barge_in:stop')", 40)
            stats = wait_for(page, "s => s.events.filter(e => e === 'tts_end').length >= 2", 30)
            page.screenshot(path=str(SCREENSHOT))
            log_text = page.inner_text("#log")
            agent_lines = page.locator("#log .agent").all_inner_texts()
            transport = page.inner_text("#transport")
            bars = page.eval_on_selector_all(
                "#latency-chart rect",
                "rs => rs.map(r => [+r.dataset.turn, r.dataset.series, +r.dataset.ms])",
            )
            stop_marks = page.eval_on_selector_all(
                "#latency-chart .stop", "ms => ms.map(m => +m.dataset.turn)"
            )
            # A voice clip uploaded as a file: decoded by the page, sent on the data channel.
            page.set_input_files("#clip-file", str(clip))
            voice = wait_for(page, "s => s.voice && s.voice.cloned", 40)["voice"]
            voice_text = page.inner_text("#voice")
        finally:
            context.close()
    assert stats["transport"] == "WebRTC", stats["fallback"]
    assert transport == "WebRTC"
    heard = [t for t in stats["transcripts"] if t]
    assert overlap(QUESTION, heard[0]) >= 0.8, heard
    assert overlap(INTERRUPTION, heard[1]) >= 0.6, heard
    assert "You: " in log_text
    assert "Agent: " in log_text
    assert len(agent_lines) == 2, agent_lines  # one line per reply: no empty "Agent:" line
    assert all(line.strip() != "Agent:" for line in agent_lines), agent_lines
    assert failed == []  # no 404 (a favicon, a missing file) in the console
    # The reply was heard at the page (the level of its output track) ...
    started, paused, restarted = (
        moment(stats, "tts_start"),
        moment(stats, "barge_in:pause"),
        moment(stats, "tts_start", 2),
    )
    # How long depends on ASR speed; the first turn's figures say why if it is not.
    assert started < paused, ("the reply began after the interruption", stats["latency"])
    assert loud_seconds(stats, started, paused) > 0.3, stats["latency"]
    # ... the interruption silenced it (nothing queued was played after the pause) ...
    assert loud_seconds(stats, paused + 500, restarted) == 0
    # ... then the new utterance was answered, and heard too.
    assert loud_seconds(stats, restarted, float("inf")) > 0.3
    events = stats["events"]
    assert events.index("barge_in:pause") < events.index("barge_in:stop")
    first, second = stats["latency"][:2]
    assert first["voice_to_voice_ms"] > 0
    assert second["turn"] == 2
    assert "barge-in: stop" in log_text
    # The latency chart: one group of bars per reply, drawn from the turns' figures.
    turns = stats["turns"]
    assert [t["turn"] for t in turns[:2]] == [1, 2]
    spoken = turns[0]
    assert spoken["asr_ms"] > 0
    assert spoken["end_of_turn_ms"] > 0
    assert spoken["voice_to_voice_ms"] >= spoken["end_of_turn_ms"]  # it includes the wait
    assert spoken["stopped"]  # the interruption stopped the first reply
    drawn = {(turn, series): ms for turn, series, ms in bars}
    for key in ("asr_ms", "end_of_turn_ms", "first_audio_ms", "voice_to_voice_ms"):
        assert drawn[(1, key)] == math.floor(spoken[key] + 0.5), (key, bars)  # Math.round
    assert stop_marks == [1]
    # The microphone meter moved with the question (-60..0 dBFS as 0..1).
    assert stats["micPeak"] > 0.3
    assert 3 < voice["seconds"] < 10
    assert overlap(CLIP_WORDS, voice["transcript"]) >= 0.7, voice
    assert voice_text.startswith("cloned voice")


MUTED = "Tell me a joke about cats."
HELD = "I would like to book a table for"  # unfinished: no judge ends it at a pause


def metric(url: str, name: str, **labels: str) -> float:
    """A counter's value from the orchestrator's /metrics (0 when not yet counted)."""
    body = urllib.request.urlopen(f"{url}/metrics", timeout=10).read().decode()
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in body.splitlines():
        if line.startswith(f"{name}{{{want}}} "):
            return float(line.split()[-1])
    return 0.0


@pytest.mark.parametrize(("query", "transport"), [("", "WebRTC"), ("?transport=ws", "WebSocket")])
def test_push_to_talk_sends_only_while_held_and_ends_the_turn_at_release(
    stack: tuple[WorkerProcess, OrchestratorProcess], tmp_path: Path, query: str, transport: str
) -> None:
    """The microphone says one thing before the button is held (never heard), then
    unfinished words while it is held; let go 0.3 s after them, the turn ends with
    the client's ``end_turn`` (the session's turns are manual: nothing else ends one).
    On either transport: WebRTC mutes the track it sends, the WebSocket sends silence."""
    _, orchestrator = stack
    track = np.concatenate(
        [
            np.zeros(3 * 16000, np.int16),
            speech_16k(MUTED, lead_s=0.0, tail_s=0.0),
            np.zeros(5 * 16000, np.int16),
            speech_16k(HELD, lead_s=0.0, tail_s=0.0),
            np.zeros(30 * 16000, np.int16),
        ]
    )
    wav = microphone_wav(tmp_path / "ptt.wav", track)
    ended_by_client = metric(orchestrator.url, "duplex_turn_ends_total", by="client")
    with sync_playwright() as playwright:
        context = launch(playwright, tmp_path, wav)
        try:
            page = context.new_page()
            page.goto(orchestrator.url + query)
            page.check("#ptt")
            page.click("#connect")
            wait_for(page, "s => s.state === 'listening'", 20)
            wait_for(page, "s => s.micLoudAt > 0 && performance.now() - s.micLoudAt > 500", 20)
            page.dispatch_event("#talk", "pointerdown")  # the muted words are over
            pressed = float(page.evaluate("performance.now()"))
            wait_for(page, f"s => s.micLoudAt > {pressed}", 20)
            wait_for(page, "s => performance.now() - s.micLoudAt > 300", 20)
            page.dispatch_event("#talk", "pointerup")
            stats = wait_for(page, "s => s.events.includes('tts_end')", 40)
        finally:
            context.close()
    assert stats["transport"] == transport, stats["fallback"]
    assert stats["turnDetection"] == "manual"  # only the release ends a turn
    assert stats["errors"] == []
    assert [on for _, on in stats["held"]] == [True, False]
    heard = [t for t in stats["transcripts"] if t]
    assert len(heard) == 1, heard
    assert overlap(HELD, heard[0]) >= 0.7, heard
    assert overlap(MUTED, heard[0]) < 0.3, heard  # nothing of what was said before
    assert moment(stats, "vad") > pressed  # no speech reached the server before
    assert metric(orchestrator.url, "duplex_turn_ends_total", by="client") == ended_by_client + 1


def test_the_page_falls_back_to_the_websocket_when_webrtc_fails(
    stack: tuple[WorkerProcess, OrchestratorProcess], tmp_path: Path
) -> None:
    worker, _ = stack
    # No browser candidate is in this network: the server refuses the offer.
    orchestrator = start_orchestrator(
        [worker.address], tmp_path / "o.log", "--rtc-peer-network", "192.0.2.1/32"
    )
    wav = write_wav(tmp_path / "quiet.wav", np.zeros(16000 * 30, np.int16), 16000)
    try:
        with sync_playwright() as playwright:
            context = launch(playwright, tmp_path, wav)
            try:
                page = context.new_page()
                page.goto(orchestrator.url)
                page.click("#connect")
                wait_for(page, "s => s.state === 'listening'", 20)
                page.fill("#type-text", "Hello over the fallback.")
                page.click("#type-form button")
                stats = wait_for(page, "s => s.events.includes('tts_end')", 30)
                transport = page.inner_text("#transport")
                log_text = page.inner_text("#log")
            finally:
                context.close()
    finally:
        orchestrator.stop()
    assert stats["transport"] == "WebSocket"
    assert transport == "WebSocket"
    assert "offer refused: 400" in stats["fallback"]
    assert "using the WebSocket" in log_text
    assert stats["framesReceived"] > 20  # the reply's PCM frames came over the socket
    assert stats["peakRms"] > 0.01


def moment(stats: dict[str, Any], event: str, nth: int = 1) -> float:
    """When the page received the ``nth`` event (performance.now() milliseconds)."""
    times = [t for t, name in stats["timeline"] if name == event]
    return float(times[nth - 1])


def loud_seconds(stats: dict[str, Any], since_ms: float, until_ms: float) -> float:
    """Seconds the page's output was loud between two page times (20 ms samples)."""
    return sum(0.02 for t, _ in stats["levels"] if since_ms <= t < until_ms)


def wait_for(page: Any, predicate: str, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        stats: dict[str, Any] = page.evaluate("() => window.duplexStats")
        if page.evaluate(f"({predicate})", stats):  # on the same snapshot it returns
            return stats
        time.sleep(0.1)
    raise AssertionError(
        f"timed out waiting for {predicate}: {page.evaluate('() => window.duplexStats')}"
    )


def overlap(expected: str, heard: str) -> float:
    want, got = words_of(expected).split(), set(words_of(heard).split())
    return sum(1 for w in want if w in got) / len(want)
