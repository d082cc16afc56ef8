"""The model manager: loads, warms, references and evicts models inside one worker.

Decisions (what to evict, when to look again) come from the pure functions in
``duplex_tts.eviction``; this module does the I/O around them. Invariants:

- a model with a reference (a session, or a variant built on it) is never unloaded;
- concurrent requests for one model share one load;
- at most ``max_parallel_loads`` loads run at once;
- pinned models (preloads, LoadModel(pin=true)) are never evicted; the kept
  default is never TTL-evicted and gives way under the resident cap last;
- a model whose family declares a DEVICE executor is loaded, warmed, used and
  closed on that device's one thread; others load in a thread and synthesize
  on the shared pool;
- ``memory_bytes`` is what the engine reports, else the process's memory
  growth across load and warm-up, measured under the load semaphore.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from typing import TypeVar

from duplex_protocol.cores import cap_torch_threads
from duplex_tts import metrics
from duplex_tts.adapters import (
    AdapterError,
    Executor,
    ExecutorKind,
    TTSFamily,
    get_family,
)
from duplex_tts.catalog import Catalog, ModelSpec
from duplex_tts.eviction import EvictionPolicy, Residency, make_room, next_check, ttl_expired
from duplex_tts.memory import release_freed_memory, rss_bytes
from duplex_tts.model_entry import ModelEntry
from duplex_tts.model_types import (
    LoadFailed,
    ModelError,
    ModelHandle,
    ModelInUse,
    ModelStatus,
    NoCapacity,
    State,
    UnknownModel,
)
from duplex_tts.scheduler import Executors
from duplex_tts.warmup import warm_up, warmup_text

log = logging.getLogger(__name__)
T = TypeVar("T")


class ModelManager:
    def __init__(
        self,
        catalog: Catalog,
        policy: EvictionPolicy,
        *,
        max_parallel_loads: int = 1,
        device: str = "cpu",
        executors: Executors | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        family_loader: Callable[[str], TTSFamily] = get_family,
    ) -> None:
        self._entries: dict[str, ModelEntry] = {}
        self._executors = executors or Executors(1)
        self._policy = policy
        self._semaphore = asyncio.Semaphore(max_parallel_loads)
        self._device = device
        self._clock = clock
        self._wall = wall
        self._family_loader = family_loader
        self._families: dict[str, TTSFamily] = {}
        self._wakeup = asyncio.Event()
        self.set_catalog(catalog)

    # ---- catalog -------------------------------------------------------

    def set_catalog(self, catalog: Catalog) -> None:
        """Adopt a new catalog (RELOAD). Resident models stay until evicted or unloaded."""
        for model_id, spec in catalog.models.items():
            entry = self._entries.get(model_id)
            if entry is None:
                self._entries[model_id] = ModelEntry(spec=spec)
            elif entry.state in (State.AVAILABLE, State.FAILED):
                entry.spec = spec
        for model_id in list(self._entries):
            entry = self._entries[model_id]
            if model_id not in catalog.models and entry.state in (State.AVAILABLE, State.FAILED):
                del self._entries[model_id]

    def statuses(self) -> list[ModelStatus]:
        return [e.status() for e in sorted(self._entries.values(), key=lambda e: e.spec.id)]

    def status(self, model_id: str) -> ModelStatus:
        return self._entry(model_id).status()

    def spec(self, model_id: str) -> ModelSpec:
        return self._entry(model_id).spec

    def resident_ids(self) -> list[str]:
        return sorted(m for m, e in self._entries.items() if e.state is State.READY)

    # ---- references ----------------------------------------------------

    async def acquire(self, model_id: str) -> ModelHandle:
        """Reference a model, loading it first if needed."""
        entry = self._entry(model_id)
        entry.refs += 1  # held across the load, so nothing evicts it meanwhile
        try:
            await self._ensure_ready(entry)
        except BaseException:
            entry.refs -= 1
            raise
        assert entry.model is not None
        assert entry.executor is not None
        self._touch(entry)
        return ModelHandle(model_id, entry.model, entry.gain, entry.executor, self._release)

    def _release(self, model_id: str) -> None:
        entry = self._entries.get(model_id)
        if entry is None:
            return
        entry.refs = max(0, entry.refs - 1)
        self._touch(entry)
        self._wakeup.set()

    # ---- explicit load / unload ---------------------------------------

    async def load(self, model_id: str, *, pin: bool = False, keep: bool = False) -> ModelStatus:
        """Load now. ``pin``: never evict; ``keep`` (the default model): never TTL-evict."""
        entry = self._entry(model_id)
        if pin:
            entry.pinned = True
        if keep:
            entry.kept = True
        await self._ensure_ready(entry)
        self._touch(entry)
        return entry.status()

    async def unload(self, model_id: str) -> ModelStatus:
        entry = self._entry(model_id)
        if entry.state is State.LOADING and entry.load_task is not None:
            await asyncio.shield(entry.load_task)
        if entry.refs > 0:
            raise ModelInUse(
                f"model {model_id!r} is in use by {entry.refs} session(s); "
                "end them (or wait) before unloading"
            )
        entry.pinned = False
        if entry.state is State.READY:
            await self._unload(entry, reason="request")
        return entry.status()

    # ---- eviction ------------------------------------------------------

    async def sweep(self) -> list[str]:
        """Evict TTL-expired models now; returns their ids."""
        now = self._clock()
        expired = ttl_expired(self._residencies(), self._policy, now)
        for model_id in expired:
            entry = self._entries[model_id]
            # Re-check: an acquire may have landed while an earlier unload awaited.
            if entry.state is State.READY and entry.refs == 0 and not entry.pinned:
                await self._unload(entry, reason="ttl")
        return expired

    async def run_sweeper(self, max_interval_s: float = 5.0) -> None:
        """Evict on TTL for ever, sleeping until the next model could expire."""
        while True:
            await self.sweep()
            wait = next_check(self._residencies(), self._policy, self._clock())
            self._wakeup.clear()
            timeout = max_interval_s if wait is None else min(max_interval_s, wait + 0.01)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout)

    async def forget(self) -> None:
        """RELOAD: every resident model drops what it derived (``TTSModel.forget``)."""
        await self._each_resident("forget")

    async def release_memory(self) -> None:
        """Let every resident model give back working memory, then trim the heap."""
        await self._each_resident("release_memory")
        await asyncio.to_thread(release_freed_memory)

    async def _each_resident(self, hook: str) -> None:
        for entry in list(self._entries.values()):
            if entry.state is State.READY and entry.model is not None and entry.executor:
                call = getattr(entry.model, hook)
                try:  # behind any synthesis: a far deadline on the model's own executor
                    await entry.executor.run(call, time.monotonic() + 3600.0)
                except Exception:  # a failed hook only keeps memory: not worth a failure
                    log.exception("%s failed", hook, extra={"model": entry.spec.id})

    async def close(self) -> None:
        for entry in list(self._entries.values()):
            if entry.load_task is not None and not entry.load_task.done():
                entry.load_task.cancel()
            if entry.state is State.READY:
                await self._unload(entry, reason="shutdown")

    # ---- internals -----------------------------------------------------

    def _entry(self, model_id: str) -> ModelEntry:
        entry = self._entries.get(model_id)
        if entry is None:
            known = ", ".join(sorted(self._entries)) or "none"
            raise UnknownModel(f"unknown model {model_id!r}; this worker serves: {known}")
        return entry

    def _touch(self, entry: ModelEntry) -> None:
        entry.last_used = self._clock()
        entry.last_used_wall = self._wall()

    def _residencies(self) -> list[Residency]:
        return [e.residency() for e in self._entries.values() if e.resident]

    async def _ensure_ready(self, entry: ModelEntry) -> None:
        if entry.state is State.READY:
            return
        if entry.state is not State.LOADING:
            victims = make_room(self._residencies(), self._policy, self._clock())
            if victims is None:
                raise NoCapacity(
                    f"cannot load {entry.spec.id!r}: resident cap {self._policy.resident_cap} "
                    "reached and every resident model is in use, pinned or within min residency"
                )
            entry.state = State.LOADING
            entry.error = ""
            entry.load_task = asyncio.create_task(self._load(entry, victims))
        assert entry.load_task is not None
        # shield: one caller giving up must not cancel the load the others share.
        await asyncio.shield(entry.load_task)
        if entry.state is not State.READY:
            raise LoadFailed(f"model {entry.spec.id!r} failed to load: {entry.error}")

    async def _load(self, entry: ModelEntry, victims: list[str]) -> None:
        spec = entry.spec
        for victim in victims:
            victim_entry = self._entries[victim]
            if victim_entry.state is State.READY and victim_entry.refs == 0:
                await self._unload(victim_entry, reason="lru")
        try:
            if spec.base_model:
                entry.base = await self.acquire(spec.base_model)
            async with self._semaphore:
                family = self._family(spec.family)
                base_model = entry.base.model if entry.base else None
                device_thread = self._device if family.executor is ExecutorKind.DEVICE else ""
                before = rss_bytes()
                started = time.perf_counter()
                model = await self._blocking(
                    device_thread, lambda: _capped(family.load(spec, self._device, base_model))
                )
                loaded = time.perf_counter()
                executor = self._executor_for(device_thread)
                try:
                    gain = await warm_up(model, executor, warmup_text(spec))
                except BaseException:
                    await self._blocking(device_thread, model.close)  # no half-loaded leak
                    raise
                warmed = time.perf_counter()
                reported = model.memory_bytes
                memory = reported if reported is not None else max(0, rss_bytes() - before)
        except asyncio.CancelledError:
            self._fail(entry, "load cancelled")
            raise
        except (AdapterError, ModelError) as exc:
            self._fail(entry, str(exc))
            return
        except Exception as exc:  # a broken adapter must not leave the model LOADING for ever
            log.exception("unexpected load error", extra={"event": "load_error", "model": spec.id})
            self._fail(entry, f"{type(exc).__name__}: {exc}")
            return
        entry.executor, entry.device_thread, entry.memory_bytes = executor, device_thread, memory
        entry.model, entry.gain, entry.state = model, gain, State.READY
        entry.loaded_at, entry.loaded_at_wall = self._clock(), self._wall()
        entry.load_ms = int((warmed - started) * 1000)
        self._touch(entry)
        labels = {"model": spec.id, "family": spec.family}
        metrics.MODEL_LOAD.labels(**labels).observe(loaded - started)
        metrics.MODEL_WARMUP.labels(**labels).observe(warmed - loaded)
        metrics.RESIDENT_MODELS.set(len(self.resident_ids()))
        log.info(
            "model loaded",
            extra={
                "event": "model_load",
                **labels,
                "load_ms": int((loaded - started) * 1000),
                "warmup_ms": int((warmed - loaded) * 1000),
                "gain_db": round(20 * math.log10(gain), 1),
                "memory_bytes": memory,
                "executor": device_thread or "shared",
            },
        )
        self._wakeup.set()

    def _fail(self, entry: ModelEntry, message: str) -> None:
        entry.state, entry.error, entry.model = State.FAILED, message, None
        if entry.base is not None:
            entry.base.release()
            entry.base = None
        metrics.MODEL_LOAD_FAILURES.labels(model=entry.spec.id, family=entry.spec.family).inc()
        log.error(
            "model load failed",
            extra={"event": "model_load_failed", "model": entry.spec.id, "error": message},
        )

    async def _unload(self, entry: ModelEntry, reason: str) -> None:
        model, entry.model = entry.model, None
        entry.state, entry.load_task, entry.executor = State.AVAILABLE, None, None
        entry.memory_bytes = 0
        if entry.base is not None:
            entry.base.release()
            entry.base = None
        started = time.perf_counter()
        if model is not None:
            await self._blocking(entry.device_thread, model.close)
            del model
            # Hand freed weights back to the OS, so RSS (and placement) see the eviction.
            await asyncio.to_thread(release_freed_memory)
        labels = {"model": entry.spec.id, "family": entry.spec.family}
        metrics.MODEL_UNLOAD.labels(**labels).observe(time.perf_counter() - started)
        if reason in ("ttl", "lru"):
            metrics.EVICTIONS.labels(model=entry.spec.id, reason=reason).inc()
        metrics.RESIDENT_MODELS.set(len(self.resident_ids()))
        log.info("model unloaded", extra={"event": "model_unload", **labels, "reason": reason})

    async def _blocking(self, device_thread: str, fn: Callable[[], T]) -> T:
        """Run a load or close on the model's device thread, else in a plain thread."""
        if device_thread:
            return await self._executors.device(device_thread).run(fn, deadline=0.0)
        return await asyncio.to_thread(fn)

    def _executor_for(self, device_thread: str) -> Executor:
        return self._executors.device(device_thread) if device_thread else self._executors.shared

    def _family(self, name: str) -> TTSFamily:
        if name not in self._families:
            self._families[name] = self._family_loader(name)
        return self._families[name]


def _capped(model: T) -> T:
    """On the thread that loaded it (a torch engine's device thread runs all its calls:
    torch's thread count is set per thread under OpenMP), torch's threads capped by a
    container's CPU limit; nothing when no engine imported torch."""
    cap_torch_threads()
    return model


__all__ = [  # the public types are re-exported: this module is where callers find them
    "LoadFailed",
    "ModelError",
    "ModelHandle",
    "ModelInUse",
    "ModelManager",
    "ModelStatus",
    "NoCapacity",
    "State",
    "UnknownModel",
]
