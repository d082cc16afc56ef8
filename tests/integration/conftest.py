"""Fixtures: real worker processes (mock and Piper), a worker factory, a device thread, kmock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from duplex_tts.scheduler import SynthesisScheduler
from tests.support.emulator import declare_cluster
from tests.support.worker import WorkerProcess, start_worker


@pytest.fixture(scope="module")
def mock_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    """A mock-family worker shared by a module's tests."""
    log = tmp_path_factory.mktemp("mock-worker") / "worker.log"
    worker = start_worker(["--adapter", "mock", "--default-model", "mock"], log)
    yield worker
    worker.stop()


@pytest.fixture(scope="module")
def piper_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    """A Piper worker shared by a module's tests."""
    log = tmp_path_factory.mktemp("piper") / "worker.log"
    worker = start_worker(["--adapter", "piper", "--default-model", "piper-en-us-joe-medium"], log)
    yield worker
    worker.stop()


@pytest.fixture
def worker_factory(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def factory(*args: str) -> WorkerProcess:
        worker = start_worker(list(args), tmp_path / f"worker-{len(started)}.log")
        started.append(worker)
        return worker

    yield factory
    for worker in started:
        worker.stop()


@pytest.fixture
def device() -> Iterator[SynthesisScheduler]:
    """A device thread like a worker's: one thread, earliest deadline first."""
    scheduler = SynthesisScheduler(1, name="device-cpu")
    yield scheduler
    scheduler.shutdown()


@pytest.fixture
def k8s(kmock: Any) -> str:
    """kmock's emulator declared as duplex's cluster; its URL."""
    return declare_cluster(kmock)
