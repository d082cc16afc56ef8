"""The async model manager with real mock-family loads and an injected clock."""

import asyncio
import threading
from pathlib import Path

import pytest

from duplex_tts.adapters import ExecutorKind, TTSFamily, TTSModel, get_family
from duplex_tts.catalog import ModelSpec, load_catalog
from duplex_tts.eviction import EvictionPolicy
from duplex_tts.manager import (
    LoadFailed,
    ModelInUse,
    ModelManager,
    NoCapacity,
    State,
    UnknownModel,
)
from tests.support.voicepacks import write_mock_pack


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingFamily(TTSFamily):
    """The real mock family, counting loads and the most that ran at once."""

    name = "mock"

    def __init__(self) -> None:
        self.inner = get_family("mock")
        self.loads: list[str] = []
        self.running = 0
        self.max_running = 0
        self._lock = threading.Lock()

    def load(self, spec: ModelSpec, device: str, base: TTSModel | None) -> TTSModel:
        with self._lock:
            self.loads.append(spec.id)
            self.running += 1
            self.max_running = max(self.max_running, self.running)
        try:
            return self.inner.load(spec, device, base)
        finally:
            with self._lock:
                self.running -= 1


@pytest.fixture
def packs(tmp_path: Path) -> Path:
    for name in ("a", "b", "c"):
        write_mock_pack(tmp_path, name, load_delay_ms=50)
    write_mock_pack(tmp_path, "broken", fail_load="weights are corrupt")
    write_mock_pack(tmp_path, "a-lora", base_model="a", pitch_ratio=1.5)
    return tmp_path


def make(packs: Path, clock: Clock, family: CountingFamily, **policy: float) -> ModelManager:
    return ModelManager(
        load_catalog(packs),
        EvictionPolicy(
            ttl_s=policy.get("ttl_s"),
            min_residency_s=policy.get("min_residency_s", 0.0),
            resident_cap=int(policy.get("resident_cap", 0)),
        ),
        max_parallel_loads=int(policy.get("max_parallel_loads", 1)),
        clock=clock,
        family_loader=lambda name: family,
    )


async def test_concurrent_requests_share_one_load(packs: Path) -> None:
    family = CountingFamily()
    manager = make(packs, Clock(), family)
    handles = await asyncio.gather(*(manager.acquire("a") for _ in range(5)))
    assert family.loads == ["a"]
    assert len({id(h.model) for h in handles}) == 1
    assert manager.status("a").refs == 5


async def test_load_semaphore_bounds_parallel_loads(packs: Path) -> None:
    family = CountingFamily()
    manager = make(packs, Clock(), family, max_parallel_loads=1)
    await asyncio.gather(manager.load("a"), manager.load("b"), manager.load("c"))
    assert family.max_running == 1
    family2 = CountingFamily()
    manager2 = make(packs, Clock(), family2, max_parallel_loads=3)
    await asyncio.gather(manager2.load("a"), manager2.load("b"), manager2.load("c"))
    assert family2.max_running > 1


async def test_no_unload_while_referenced(packs: Path) -> None:
    manager = make(packs, Clock(), CountingFamily())
    handle = await manager.acquire("a")
    with pytest.raises(ModelInUse, match="in use by 1 session"):
        await manager.unload("a")
    assert manager.status("a").state is State.READY
    handle.release()
    handle.release()  # idempotent
    assert manager.status("a").refs == 0
    assert (await manager.unload("a")).state is State.AVAILABLE


async def test_ttl_evicts_idle_unpinned_models_after_min_residency(packs: Path) -> None:
    clock = Clock()
    manager = make(packs, clock, CountingFamily(), ttl_s=10, min_residency_s=30)
    await manager.load("a")
    await manager.load("b", pin=True)
    held = await manager.acquire("c")
    clock.now += 20  # idle past TTL but not resident long enough
    assert await manager.sweep() == []
    clock.now += 15
    assert await manager.sweep() == ["a"]
    assert manager.resident_ids() == ["b", "c"]
    held.release()
    clock.now += 10
    assert await manager.sweep() == ["c"]
    assert manager.resident_ids() == ["b"]  # pinned stays


async def test_use_refreshes_ttl(packs: Path) -> None:
    clock = Clock()
    manager = make(packs, clock, CountingFamily(), ttl_s=10)
    await manager.load("a")
    clock.now += 8
    (await manager.acquire("a")).release()
    clock.now += 8
    assert await manager.sweep() == []


async def test_resident_cap_evicts_least_recently_used(packs: Path) -> None:
    clock = Clock()
    family = CountingFamily()
    manager = make(packs, clock, family, resident_cap=2)
    await manager.load("a")
    clock.now += 1
    await manager.load("b")
    clock.now += 1
    (await manager.acquire("a")).release()  # a is now more recent than b
    clock.now += 1
    await manager.load("c")
    assert manager.resident_ids() == ["a", "c"]


async def test_resident_cap_with_nothing_evictable_is_no_capacity(packs: Path) -> None:
    manager = make(packs, Clock(), CountingFamily(), resident_cap=2)
    await manager.acquire("a")
    await manager.load("b", pin=True)
    with pytest.raises(NoCapacity, match="resident cap 2"):
        await manager.acquire("c")
    assert manager.status("c").state is State.AVAILABLE
    assert manager.status("c").refs == 0


async def test_failed_load_is_reported_and_retried(packs: Path) -> None:
    manager = make(packs, Clock(), CountingFamily())
    with pytest.raises(LoadFailed, match="weights are corrupt"):
        await manager.acquire("broken")
    status = manager.status("broken")
    assert (status.state, status.error, status.refs) == (State.FAILED, "weights are corrupt", 0)
    with pytest.raises(LoadFailed):
        await manager.load("broken")


async def test_an_unexpected_adapter_error_fails_the_load_instead_of_hanging(packs: Path) -> None:
    class ExplodingFamily(CountingFamily):
        def load(self, spec: ModelSpec, device: str, base: TTSModel | None) -> TTSModel:
            raise ImportError("No module named 'onnxruntime'")

    manager = make(packs, Clock(), ExplodingFamily())
    with pytest.raises(LoadFailed, match="ImportError: No module named 'onnxruntime'"):
        await asyncio.wait_for(manager.acquire("a"), 5)
    assert manager.status("a").state is State.FAILED


async def test_unknown_model_lists_what_is_served(packs: Path) -> None:
    manager = make(packs, Clock(), CountingFamily())
    with pytest.raises(UnknownModel, match="unknown model 'nope'; this worker serves: a, a-lora"):
        await manager.acquire("nope")


async def test_variant_holds_its_base_model(packs: Path) -> None:
    manager = make(packs, Clock(), CountingFamily())
    variant = await manager.acquire("a-lora")
    assert manager.resident_ids() == ["a", "a-lora"]
    assert manager.status("a").refs == 1  # held by the variant
    with pytest.raises(ModelInUse):
        await manager.unload("a")
    variant.release()
    await manager.unload("a-lora")
    assert manager.status("a").refs == 0
    await manager.unload("a")
    assert manager.resident_ids() == []


async def test_warm_up_calibrates_a_gain(packs: Path) -> None:
    manager = make(packs, Clock(), CountingFamily())
    handle = await manager.acquire("a")
    assert handle.gain != 1.0
    assert manager.status("a").load_ms >= 50


async def test_reload_adds_models_and_keeps_resident_ones(packs: Path) -> None:
    manager = make(packs, Clock(), CountingFamily())
    await manager.load("a")
    import shutil

    shutil.rmtree(packs / "mock" / "a")
    write_mock_pack(packs, "d")
    manager.set_catalog(load_catalog(packs))
    ids = [s.spec.id for s in manager.statuses()]
    assert "d" in ids
    assert "a" in ids  # resident: stays until unloaded
    await manager.unload("a")
    manager.set_catalog(load_catalog(packs))
    assert "a" not in [s.spec.id for s in manager.statuses()]


class ThreadsOfATorch:
    """torch as an engine leaves it in ``sys.modules``: its thread count, and the thread
    that set it (under OpenMP the count is per thread)."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.set_on: int | None = None

    def get_num_threads(self) -> int:
        return self.threads

    def set_num_threads(self, threads: int) -> None:
        self.threads, self.set_on = threads, threading.get_ident()


class DeviceFamily(CountingFamily):
    """A torch-like family: loaded, and later run, on the worker's device thread."""

    executor = ExecutorKind.DEVICE

    def __init__(self) -> None:
        super().__init__()
        self.loaded_on: int | None = None

    def load(self, spec: ModelSpec, device: str, base: TTSModel | None) -> TTSModel:
        self.loaded_on = threading.get_ident()
        return super().load(spec, device, base)


async def test_a_torch_engine_is_held_to_the_cpu_limit_on_its_own_device_thread(
    packs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from duplex_protocol import cores

    torch = ThreadsOfATorch(64)  # one per physical core of a large node
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setattr(cores, "quota_limited_cores", lambda root=None: 4)  # a 4-CPU limit
    family = DeviceFamily()
    await make(packs, Clock(), family).load("a")
    assert torch.threads == 4
    assert torch.set_on == family.loaded_on != threading.get_ident()
