"""The worker Lease record: built, read back, liveness, and foreign or broken Leases ignored."""

from datetime import UTC, datetime, timedelta
from typing import Any

from duplex_protocol.lease import (
    ResidentModel,
    WorkerState,
    lease_manifest,
    read_lease,
)

NOW = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)
STATE = WorkerState(
    families=["piper"],
    models=["piper-en-us-joe-medium", "mock"],
    resident=[ResidentModel(id="piper-en-us-joe-medium", state="ready", pinned=True, load_ms=1300)],
    queue_depth=2,
    p50_first_audio_ms=71.5,
)


def lease(**overrides: Any) -> dict[str, Any]:
    manifest = lease_manifest(
        pod="cpu-0",
        pod_uid="uid-1",
        namespace="voice",
        pool="cpu",
        endpoint="10.0.0.7:7001",
        state=STATE,
        now=NOW,
    )
    manifest.update(overrides)
    return manifest


def test_manifest_follows_the_design() -> None:
    manifest = lease()
    meta = manifest["metadata"]
    assert meta["name"] == "duplex-tts-cpu-0"
    assert meta["labels"] == {
        "app.kubernetes.io/name": "duplex",
        "app.kubernetes.io/component": "tts-worker",
        "duplex.dev/pool": "cpu",
    }
    assert meta["ownerReferences"][0]["kind"] == "Pod"
    assert manifest["spec"]["holderIdentity"] == "cpu-0"
    assert manifest["spec"]["leaseDurationSeconds"] == 10
    assert manifest["spec"]["renewTime"] == "2026-11-21T12:00:00.000000Z"


def test_read_back_and_liveness() -> None:
    view = read_lease(lease())
    assert view is not None
    assert (view.pod, view.pool, view.endpoint) == ("cpu-0", "cpu", "10.0.0.7:7001")
    assert view.state == STATE
    assert view.alive(NOW + timedelta(seconds=10))
    assert not view.alive(NOW + timedelta(seconds=10, milliseconds=1))


def test_foreign_and_broken_leases_are_ignored() -> None:
    other = lease()
    other["metadata"] = {**other["metadata"], "labels": {"app": "something-else"}}
    assert read_lease(other) is None
    broken = lease()
    broken["metadata"]["annotations"] = {
        "duplex.dev/endpoint": "x:1",
        "duplex.dev/state": "{not json",
    }
    assert read_lease(broken) is None
    assert read_lease({"metadata": {"name": "duplex-tts-x"}}) is None


def test_unknown_state_fields_from_newer_workers_are_tolerated() -> None:
    text = STATE.to_json().replace('"device"', '"gpu_temperature":61,"device"')
    assert WorkerState.from_json(text) == STATE


def test_unknown_resident_model_fields_from_newer_workers_are_tolerated() -> None:
    text = STATE.to_json().replace('"load_ms"', '"vram_peak":3,"load_ms"')
    assert '"vram_peak"' in text
    assert WorkerState.from_json(text) == STATE
