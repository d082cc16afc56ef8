"""The orchestrator's Whisper at start: loaded, then warmed on every worker at once; or,
on a device that cannot run it (a GPU without CUDA's libraries), a one-line error and
exit 2 instead of a traceback. A stand-in for faster-whisper's model here; the real
load is in the integration tests."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest

from duplex_orchestrator import app
from duplex_orchestrator.app import AsrUnavailable, make_transcriber
from duplex_orchestrator.cli import orchestrator_main
from duplex_orchestrator.config import build_config

CUDA_ERROR = "CUDA failed with error no CUDA-capable device is detected"


class WarmedTogether:
    """Records its transcriptions; each waits for the others, so run one after another
    they would break the barrier."""

    def __init__(self, model_dir: Any, **options: Any) -> None:
        self.workers = options["workers"] or 2
        self.heard: list[int] = []
        self._together = threading.Barrier(self.workers, timeout=5)

    def transcribe(self, audio: np.ndarray, wanted: Any = None, align: Any = None) -> None:
        self.heard.append(len(audio))
        self._together.wait()


class NoGpu:
    def __init__(self, model_dir: Any, **options: Any) -> None:
        raise RuntimeError(CUDA_ERROR)


def test_whisper_is_warmed_on_every_worker_at_once_before_the_first_turn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(app, "Transcriber", WarmedTogether)
    for workers in (1, 3):
        transcriber: Any = make_transcriber(build_config({"dev": True, "asr_workers": workers}))
        assert transcriber.heard == [16_000] * workers  # one second each


@pytest.mark.parametrize(("device", "hint"), [("cuda", True), ("cpu", False)])
def test_a_device_that_cannot_run_whisper_is_one_clear_error(
    monkeypatch: pytest.MonkeyPatch, device: str, hint: bool
) -> None:
    monkeypatch.setattr(app, "Transcriber", NoGpu)
    with pytest.raises(AsrUnavailable) as error:
        make_transcriber(build_config({"dev": True, "asr_device": device}))
    message = str(error.value)
    assert message.startswith(f"asr_device: Whisper cannot run on {device}: {CUDA_ERROR}")
    assert ("cuDNN 9" in message and "--asr-device cpu" in message) is hint


def test_the_orchestrator_exits_2_with_one_line_when_whisper_cannot_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(app, "Transcriber", NoGpu)
    argv = ["--dev", "--asr-device", "cuda", "--worker", "127.0.0.1:9"]  # fails before it binds
    with pytest.raises(SystemExit) as exit_:
        orchestrator_main([*argv, "--end-of-turn", "transcript"])
    assert exit_.value.code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if "DEV MODE" not in line]
    assert len(lines) == 1
    assert lines[0].startswith("duplex-orchestrator: asr_device: Whisper cannot run on cuda")
