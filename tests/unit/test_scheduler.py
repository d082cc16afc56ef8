"""Earliest-deadline-first synthesis threads."""

import threading
from concurrent.futures import CancelledError, Future

import pytest

from duplex_tts.scheduler import SynthesisScheduler


def occupy(scheduler: SynthesisScheduler, gate: threading.Event) -> "Future[bool]":
    """Keep the only thread busy until ``gate`` opens; return once it is running."""
    started = threading.Event()

    def hold() -> bool:
        started.set()
        return gate.wait()

    future = scheduler.submit(hold, deadline=0.0)
    assert started.wait(5)
    return future


def test_most_urgent_step_runs_first() -> None:
    scheduler = SynthesisScheduler(threads=1)
    gate = threading.Event()
    order: list[str] = []
    blocker = occupy(scheduler, gate)
    jobs: list[Future[None]] = [
        scheduler.submit(lambda name=name: order.append(name), deadline=deadline)  # type: ignore[misc]
        for name, deadline in [("late", 30.0), ("urgent", 1.0), ("middle", 2.0), ("middle-2", 2.0)]
    ]
    assert scheduler.pending == 4
    gate.set()
    assert blocker.result(timeout=5)
    for job in jobs:
        job.result(timeout=5)
    assert order == ["urgent", "middle", "middle-2", "late"]
    scheduler.shutdown()


def test_results_and_errors_reach_the_caller() -> None:
    scheduler = SynthesisScheduler(threads=2)
    assert scheduler.submit(lambda: 6 * 7, deadline=0).result(timeout=5) == 42

    def boom() -> None:
        raise RuntimeError("model crashed")

    with pytest.raises(RuntimeError, match="model crashed"):
        scheduler.submit(boom, deadline=0).result(timeout=5)
    scheduler.shutdown()


def test_cancelled_steps_never_run_and_shutdown_cancels_the_queue() -> None:
    scheduler = SynthesisScheduler(threads=1)
    gate = threading.Event()
    ran: list[str] = []
    blocker = occupy(scheduler, gate)
    dropped = scheduler.submit(lambda: ran.append("dropped"), deadline=1)
    queued = scheduler.submit(lambda: ran.append("queued"), deadline=2)
    assert dropped.cancel()
    scheduler.shutdown()
    gate.set()
    blocker.result(timeout=5)
    with pytest.raises(CancelledError):
        queued.result(timeout=5)
    assert ran == []
    with pytest.raises(RuntimeError, match="shut down"):
        scheduler.submit(lambda: None, deadline=0)


def test_needs_a_thread() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        SynthesisScheduler(threads=0)
