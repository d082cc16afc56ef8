"""Resident-first routing policy."""

from duplex_orchestrator.routing.policy import RouteRequest, WorkerView, route

PIPER = "piper-en-us-joe-medium"


def worker(
    name: str,
    *,
    resident: frozenset[str] | set[str] = frozenset(),
    models: set[str] | None = None,
    **kw: object,
) -> WorkerView:
    return WorkerView(
        worker_id=name,
        endpoint=f"{name}:7001",
        models=frozenset(models if models is not None else {PIPER, "mock", "csm"}),
        resident=frozenset(resident),
        languages={PIPER: ("en-US",), "mock": ("en-US",), "csm": ("en-US", "de-DE")},
        **kw,  # type: ignore[arg-type]
    )


def test_prefers_a_worker_where_the_model_is_resident() -> None:
    workers = [worker("a", queue_depth=0), worker("b", resident={PIPER}, queue_depth=5)]
    chosen = route(workers, RouteRequest(PIPER))
    assert chosen.worker is not None
    assert (chosen.worker.worker_id, chosen.model_id, chosen.load_on) == ("b", PIPER, None)


def test_then_lowest_queue_then_best_latency() -> None:
    workers = [
        worker("slow", resident={PIPER}, queue_depth=1, p50_first_audio_ms=50),
        worker("busy", resident={PIPER}, queue_depth=3, p50_first_audio_ms=10),
        worker("fast", resident={PIPER}, queue_depth=1, p50_first_audio_ms=20),
    ]
    assert route(workers, RouteRequest(PIPER)).worker.worker_id == "fast"  # type: ignore[union-attr]


def test_filters_unhealthy_full_excluded_and_wrong_language() -> None:
    workers = [
        worker("down", resident={PIPER}, healthy=False),
        worker("full", resident={PIPER}, active_sessions=4, max_sessions=4),
        worker("failed", resident={PIPER}),
        worker("ok", resident={PIPER}, queue_depth=9),
    ]
    chosen = route(workers, RouteRequest(PIPER, exclude=frozenset({"failed"})))
    assert chosen.worker.worker_id == "ok"  # type: ignore[union-attr]
    assert route(workers, RouteRequest(PIPER, language="de-DE")).worker is None
    assert (
        route([worker("g", resident={"csm"})], RouteRequest("csm", language="de")).worker
        is not None
    )


def test_model_resident_nowhere_loads_on_the_best_candidate_and_serves_the_fallback() -> None:
    workers = [
        worker("a", resident={PIPER}, queue_depth=2),
        worker("b", resident={PIPER}, queue_depth=0),
        worker("c", resident=set(), queue_depth=1, models={"mock"}),
    ]
    chosen = route(workers, RouteRequest("csm", fallback_model=PIPER))
    assert chosen.load_on is not None
    assert chosen.worker is not None
    assert chosen.load_on.worker_id == "b"
    assert (chosen.worker.worker_id, chosen.model_id) == ("b", PIPER)
    assert chosen.reason == "fallback while loading"


def test_without_a_resident_fallback_the_model_loads_on_demand() -> None:
    chosen = route([worker("a"), worker("b", queue_depth=3)], RouteRequest("csm"))
    assert chosen.worker is not None
    assert (chosen.worker.worker_id, chosen.model_id, chosen.load_on) == ("a", "csm", None)


def test_nobody_serves_the_model() -> None:
    chosen = route([worker("a", models={"mock"})], RouteRequest(PIPER))
    assert chosen.worker is None
    assert "no healthy worker" in chosen.reason


def test_a_worker_without_a_latency_sample_does_not_lose_to_a_measured_one() -> None:
    """A restarted worker (p50 = 0) that is idle gets the turn over a busier measured one."""
    workers = [
        worker("known", resident={PIPER}, p50_first_audio_ms=80, active_sessions=3),
        worker("restarted", resident={PIPER}, active_sessions=0),
    ]
    assert route(workers, RouteRequest(PIPER)).worker.worker_id == "restarted"  # type: ignore[union-attr]
    # ...but it does not beat the measured workers on a guess either: ties go by sessions.
    workers = [
        worker("known", resident={PIPER}, p50_first_audio_ms=80, active_sessions=0),
        worker("restarted", resident={PIPER}, active_sessions=2),
    ]
    assert route(workers, RouteRequest(PIPER)).worker.worker_id == "known"  # type: ignore[union-attr]
    # Queue depth still comes first.
    workers = [
        worker("known", resident={PIPER}, p50_first_audio_ms=80),
        worker("restarted", resident={PIPER}, queue_depth=1),
    ]
    assert route(workers, RouteRequest(PIPER)).worker.worker_id == "known"  # type: ignore[union-attr]
