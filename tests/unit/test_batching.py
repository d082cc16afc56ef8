"""Natural batching (``duplex_orchestrator.batching``) with a fake model in threads."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from duplex_orchestrator.batching import Batcher


class HeldModel:
    """Doubles numbers in batches; each batch waits until the test releases it."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.started = threading.Semaphore(0)
        self.release = threading.Event()

    def process(self, items: list[int]) -> list[int]:
        self.batches.append(items)
        self.started.release()
        assert self.release.wait(5)
        if -1 in items:
            raise ValueError("bad item")
        return [2 * i for i in items]


def wait_pending(batcher: Batcher[int, int], count: int) -> None:
    deadline = time.monotonic() + 5
    while batcher.in_flight < count:
        assert time.monotonic() < deadline
        time.sleep(0.001)


def test_a_lone_request_runs_at_once_alone() -> None:
    model = HeldModel()
    model.release.set()
    batcher = Batcher(model.process, lanes=2, max_batch=8)
    assert batcher.submit_sized(21) == (42, 1)
    assert model.batches == [[21]]


def test_requests_arriving_while_every_lane_is_busy_share_the_next_batch() -> None:
    model = HeldModel()
    batcher = Batcher(model.process, lanes=1, max_batch=3)
    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(batcher.submit_sized, 1)
        assert model.started.acquire(timeout=5)  # the lane is busy with [1]
        rest = [pool.submit(batcher.submit_sized, i) for i in range(2, 7)]
        wait_pending(batcher, 6)
        model.release.set()
        results = [first.result(5), *(f.result(5) for f in rest)]
    assert [r for r, _ in results] == [2, 4, 6, 8, 10, 12]  # each caller gets its own result
    assert model.batches[0] == [1]
    assert sorted(len(b) for b in model.batches[1:]) == [2, 3]  # 5 waiting: 3 + 2, oldest first
    assert model.batches[1] == [2, 3, 4]
    assert [size for _, size in results] == [1, 3, 3, 3, 2, 2]


def test_lanes_run_batches_side_by_side() -> None:
    model = HeldModel()
    batcher = Batcher(model.process, lanes=2, max_batch=8)
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(batcher.submit, 1)]
        assert model.started.acquire(timeout=5)
        futures.append(pool.submit(batcher.submit, 2))
        assert model.started.acquire(timeout=5)  # a second lane took it while [1] runs
        model.release.set()
        assert [f.result(5) for f in futures] == [2, 4]
    assert model.batches == [[1], [2]]


def test_an_error_reaches_every_caller_of_its_batch_and_the_batcher_goes_on() -> None:
    model = HeldModel()
    batcher = Batcher(model.process, lanes=1, max_batch=4)
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(batcher.submit, 5)
        assert model.started.acquire(timeout=5)
        bad = [pool.submit(batcher.submit, i) for i in (-1, 7)]
        wait_pending(batcher, 3)
        model.release.set()
        assert first.result(5) == 10
        for future in bad:
            with pytest.raises(ValueError, match="bad item"):
                future.result(5)
    assert batcher.submit(4) == 8  # the next batch runs as usual
    assert batcher.in_flight == 0


def test_nonsense_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Batcher(lambda items: items, lanes=0, max_batch=4)
