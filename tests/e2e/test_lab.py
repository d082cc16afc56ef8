"""The voice lab page in headless Chromium: two voices of two families compared side by side.

One worker serves Piper (resident) and the mock family (not loaded): the page
loads the mock voice on demand, speaks the text with both over ``/ws``, and
shows each one's figures, waveform and spectrogram; the WAV and JSON
downloads hold what was shown. Assertions read the page (DOM, canvases,
``window.labResults``) and the downloaded files, not screenshots.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyloudnorm
import pytest
from playwright.sync_api import sync_playwright

from tests.e2e.test_browser import launch
from tests.support.orchestrator import OrchestratorProcess, start_orchestrator
from tests.support.speech import write_wav
from tests.support.worker import WorkerProcess, start_worker

pytestmark = pytest.mark.slow

PIPER, MOCK = "piper-en-us-joe-medium", "mock"
TEXT = "Your table for two is booked for eight o'clock tonight. Would you like a window seat?"


@pytest.fixture(scope="module")
def lab_stack(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[WorkerProcess, OrchestratorProcess]]:
    tmp = tmp_path_factory.mktemp("lab-stack")
    worker = start_worker(["--adapter", "piper,mock", "--default-model", PIPER], tmp / "w.log")
    orchestrator = start_orchestrator([worker.address], tmp / "o.log")
    yield worker, orchestrator
    orchestrator.stop()
    worker.stop()


def post(url: str) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, method="POST", data=b"")
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_two_voices_side_by_side_with_figures_pictures_and_downloads(
    lab_stack: tuple[WorkerProcess, OrchestratorProcess], tmp_path: Path
) -> None:
    _, orchestrator = lab_stack
    status, unknown = post(f"{orchestrator.url}/api/models/nope/load")
    assert status == 404
    assert unknown["error"] == "unknown_model"
    assert PIPER in unknown["models"]
    silence = write_wav(tmp_path / "silence.wav", np.zeros(16000 * 5, np.int16), 16000)
    with sync_playwright() as playwright:
        context = launch(playwright, tmp_path, silence)
        try:
            page = context.new_page()
            missing: list[str] = []
            page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
            page.goto(orchestrator.url)
            page.click("a[href='/lab']")  # linked from the conversation page
            page.wait_for_selector(f"#voices input[value='{MOCK}']")
            families = page.eval_on_selector_all(
                "#voices .family", "rows => rows.map(r => r.querySelector('b').textContent)"
            )
            assert families == ["mock", "piper"]
            mock_label = page.inner_text(f"#voices label:has(input[value='{MOCK}'])")
            assert "(not loaded)" in mock_label
            page.select_option("#prepared", label=TEXT)
            assert page.input_value("#text") == TEXT
            page.check(f"#voices input[value='{PIPER}']")
            page.check(f"#voices input[value='{MOCK}']")
            page.click("#compare")
            page.wait_for_function(
                "() => window.labResults.length === 2"
                " && window.labResults.every(r => r.state === 'done' || r.state === 'error')",
                timeout=120_000,
            )
            results: list[dict[str, Any]] = page.evaluate("() => window.labResults")
            cards = {
                r["model"]: page.eval_on_selector(
                    f".card[data-model='{r['model']}']",
                    """el => ({
                        history: el.dataset.history,
                        firstAudio: el.querySelector('.first-audio').textContent,
                        rtf: el.querySelector('.rtf').textContent,
                        lufs: el.querySelector('.lufs').textContent,
                        inked: [...el.querySelectorAll('canvas')].map(c => {
                            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                            let lit = 0;
                            for (let i = 0; i < d.length; i += 4) if (d[i] + d[i + 1] > 60) lit++;
                            return lit;
                        }),
                    })""",
                )
                for r in results
            }
            with page.expect_download() as wav_download:
                page.click(f".card[data-model='{PIPER}'] .download-wav")
            wav_path = tmp_path / "piper.wav"
            wav_download.value.save_as(wav_path)
            with page.expect_download() as json_download:
                page.click("#download-json")
            report = json.loads(Path(json_download.value.path()).read_text())
            resident_after = page.inner_text(f"#voices label:has(input[value='{MOCK}'])")
        finally:
            context.close()

    assert [r["state"] for r in results] == ["done", "done"], results
    by_model = {r["model"]: r for r in results}
    assert by_model[MOCK]["family"] == "mock"
    assert by_model[PIPER]["family"] == "piper"
    # The mock voice was loaded on demand, with the state shown; Piper was resident.
    assert "loading" in cards[MOCK]["history"].split()
    assert "loading" not in cards[PIPER]["history"].split()
    assert "(loaded)" in resident_after
    for model, figures in by_model.items():
        assert figures["spoken_by"] == model
        assert figures["first_audio_ms"] > 0
        assert 0 < figures["rtf"] < 5
        assert figures["seconds"] == pytest.approx(figures["frames"] * 0.02, abs=0.001)
        assert -70 < figures["lufs"] < 0
        # What the card shows is the figure, to its shown precision (JS rounds ties up,
        # Python to even: compare numbers, not strings).
        shown = cards[model]
        assert shown["firstAudio"].endswith(" ms")
        assert abs(float(shown["firstAudio"][:-3]) - figures["first_audio_ms"]) <= 0.5 + 1e-9
        assert abs(float(shown["rtf"]) - figures["rtf"]) <= 0.0005 + 1e-9
        assert " LUFS (peak " in shown["lufs"]
        assert abs(float(shown["lufs"].split()[0]) - figures["lufs"]) <= 0.05 + 1e-9
        assert all(lit > 500 for lit in cards[model]["inked"]), cards[model]  # wave, spectrogram
    # The WAV download is what was received, and the loudness shown is its loudness.
    with wave.open(str(wav_path)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (48000, 1, 2)
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), "<i2")
    assert len(pcm) == by_model[PIPER]["frames"] * 960
    measured = pyloudnorm.Meter(48000).integrated_loudness(pcm / 32768.0)
    assert measured == pytest.approx(by_model[PIPER]["lufs"], abs=0.05)
    assert report["text"] == TEXT
    assert report["voices"] == results
    assert missing == []  # no request of either page answered 404
