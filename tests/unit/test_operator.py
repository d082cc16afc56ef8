"""The operator's pure parts: manifest builders, placement, VoiceModel status, spec checks."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from duplex_operator import (
    Candidate,
    PoolSpec,
    headless_service,
    known_size,
    place,
    service_account,
    statefulset,
    vacant_leases,
    voicemodel_problems,
    voicemodel_status,
    worker_role,
)
from duplex_operator.builders import WorkerWire
from duplex_operator.images import WorkerImage
from duplex_operator.kube import SharedListing
from duplex_operator.status import status_changes
from duplex_protocol.lease import LeaseView, ResidentModel, WorkerState, read_lease
from tests.support.crd import ROOT

IMAGES = [  # as the chart's default workerImages
    WorkerImage("duplex/tts-worker:0.1.0", frozenset({"mock", "piper", "kokoro"})),
    WorkerImage(
        "duplex/tts-worker-torch:0.1.0", frozenset({"piper", "kokoro", "csm", "xtts"}), cuda=True
    ),
]


def pool_resource(name: str) -> dict[str, Any]:
    body: dict[str, Any] = yaml.safe_load(
        (ROOT / "examples" / f"ttsworker-{name}.yaml").read_text()
    )
    body["metadata"].update(namespace="voice", uid=f"uid-{name}")
    return body


def pod_spec(manifest: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = manifest["spec"]["template"]["spec"]
    return spec


@pytest.mark.parametrize(
    ("pool", "gpu_limit", "tolerated"),
    [("cpu", None, []), ("gpu", 1, ["nvidia.com/gpu"])],
)
def test_statefulset_for_cpu_and_gpu_pools(
    pool: str, gpu_limit: int | None, tolerated: list[str]
) -> None:
    spec = PoolSpec.from_resource(pool_resource(pool), IMAGES)
    sts = statefulset(spec)
    container = pod_spec(sts)["containers"][0]
    limits = container["resources"].get("limits", {})
    assert limits.get("nvidia.com/gpu") == gpu_limit
    assert [t["key"] for t in pod_spec(sts).get("tolerations", [])] == tolerated
    assert sts["spec"]["replicas"] == spec.replicas
    assert sts["spec"]["serviceName"] == headless_service(spec)["metadata"]["name"]
    assert sts["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "duplex",
        "app.kubernetes.io/component": "tts-worker",
        "duplex.dev/pool": pool,
    }
    owner = sts["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["uid"], owner["controller"]) == ("TTSWorker", f"uid-{pool}", True)


def test_gpu_pool_details() -> None:
    sts = statefulset(PoolSpec.from_resource(pool_resource("gpu"), IMAGES))
    spec = pod_spec(sts)
    assert spec["nodeSelector"] == {"duplex.dev/node-pool": "gpu"}
    assert spec["containers"][0]["image"] == "duplex/tts-worker-torch:0.1.0"  # by its families
    args = spec["containers"][0]["args"]
    flags = dict(zip(args[::2], args[1::2], strict=True))
    assert flags["--adapter"] == "csm,xtts,piper"
    assert flags["--device"] == "cuda"
    assert flags["--preload-models"] == "csm-1b"
    assert flags["--ttl-ms"] == "900000"
    assert flags["--min-residency-ms"] == "120000"
    assert flags["--resident-cap"] == "6"
    assert flags["--max-parallel-loads"] == "1"
    assert flags["--port"] == "7001"
    # A stopping pod drains its sessions, within its grace period.
    assert 0 < int(flags["--drain-timeout-s"]) < spec["terminationGracePeriodSeconds"] - 2


def test_cpu_pool_requests_no_gpu_and_user_tolerations_are_kept() -> None:
    body = pool_resource("cpu")
    body["spec"]["tolerations"] = [{"key": "spot", "operator": "Exists"}]
    spec = pod_spec(statefulset(PoolSpec.from_resource(body)))
    assert "nvidia.com/gpu" not in str(spec["containers"][0]["resources"])
    assert spec["tolerations"] == [{"key": "spot", "operator": "Exists"}]


def test_probes_downward_api_and_security() -> None:
    spec = pod_spec(statefulset(PoolSpec.from_resource(pool_resource("cpu"))))
    container = spec["containers"][0]
    assert container["readinessProbe"]["grpc"] == {"port": 7001, "service": "duplex.tts.v1.TTS"}
    assert (
        container["startupProbe"]["failureThreshold"] * container["startupProbe"]["periodSeconds"]
        >= 300
    )
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in container["env"]}
    assert env["POD_NAME"] == "metadata.name"
    assert env["POD_NAMESPACE"] == "metadata.namespace"
    assert env["NODE_NAME"] == "spec.nodeName"
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert (
        spec["serviceAccountName"]
        == service_account(PoolSpec.from_resource(pool_resource("cpu")))["metadata"]["name"]
    )


def test_headless_service_and_least_privilege_role() -> None:
    spec = PoolSpec.from_resource(pool_resource("cpu"))
    service = headless_service(spec)
    assert service["spec"]["clusterIP"] == "None"
    assert {p["port"] for p in service["spec"]["ports"]} == {7001, 9101}
    role, binding = worker_role(spec)
    # Its own Leases and Pods by name only: no create (RBAC cannot name what is created).
    assert role["rules"] == [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": ["duplex-tts-cpu-tts-0", "duplex-tts-cpu-tts-1"],
            "verbs": ["get", "patch"],
        },
        {
            "apiGroups": [""],
            "resources": ["pods"],
            "resourceNames": ["cpu-tts-0", "cpu-tts-1"],
            "verbs": ["get"],
        },
    ]
    # ...so the operator creates them, vacant, owned by the pool.
    leases = vacant_leases(spec)
    assert [lease["metadata"]["name"] for lease in leases] == role["rules"][0]["resourceNames"]
    assert "holderIdentity" not in leases[0]["spec"]
    assert read_lease(leases[0]) is None  # a vacant Lease routes nothing
    assert binding["subjects"][0]["name"] == service_account(spec)["metadata"]["name"]


def candidate(pod: str, **kw: Any) -> Candidate:
    defaults: dict[str, Any] = {
        "pool": "gpu",
        "endpoint": f"{pod}:7001",
        "families": frozenset({"csm", "piper"}),
    }
    return Candidate(pod=pod, **{**defaults, **kw})


GB = 10**9


def test_placement_prefers_not_full_then_fewest_models_then_most_memory() -> None:
    def holding(*sizes: tuple[str, int]) -> dict[str, Any]:
        return {"resident": frozenset(m for m, _ in sizes), "resident_memory": dict(sizes)}

    workers = [
        candidate(
            "full", resident_cap=2, memory_limit_bytes=80 * GB, **holding(("a", GB), ("b", GB))
        ),
        candidate(
            "busy",
            resident_cap=4,
            memory_limit_bytes=80 * GB,
            **holding(("a", 10 * GB), ("b", 10 * GB)),
        ),
        candidate("roomy", memory_limit_bytes=80 * GB, **holding(("a", 40 * GB))),
        candidate("roomier", memory_limit_bytes=80 * GB, **holding(("b", 30 * GB))),
        candidate("dead", alive=False),
        candidate("cpu", families=frozenset({"piper"})),
        candidate("has-it", resident=frozenset({"csm-1b"})),
    ]
    chosen = place("csm-1b", "csm", 3, workers)
    assert [c.pod for c in chosen] == ["roomier", "roomy", "busy"]
    assert [c.pod for c in place("csm-1b", "csm", 10, workers)][-1] == "full"
    assert place("csm-1b", "csm", 0, workers) == []


def test_placement_puts_a_model_where_its_measured_size_fits() -> None:
    workers = [
        candidate("small", memory_limit_bytes=24 * GB, resident_memory={}),
        candidate(
            "big-but-busy",
            memory_limit_bytes=80 * GB,
            resident=frozenset({"x"}),
            resident_memory={"x": 20 * GB},
        ),
        candidate(
            "has-it",
            memory_limit_bytes=80 * GB,
            resident=frozenset({"csm-1b"}),
            resident_memory={"csm-1b": 30 * GB},
        ),
    ]
    # The size a worker measured wins over the VoiceModel's estimate.
    needs = known_size("csm-1b", workers, estimated_bytes=8 * GB)
    assert needs == 30 * GB
    # Fewest models would pick "small", but 30 GB only fit on the busy one.
    assert [c.pod for c in place("csm-1b", "csm", 2, workers, needs_bytes=needs)] == [
        "big-but-busy",
        "small",
    ]
    assert known_size("new", workers, estimated_bytes=8 * GB) == 8 * GB
    unknown_limit = candidate("unknown")
    assert unknown_limit.free_memory_bytes is None
    assert unknown_limit.fits(10**15)


def test_placement_puts_a_lora_voice_beside_its_base_and_counts_the_base_elsewhere() -> None:
    base = frozenset({"csm-1b"})
    workers = [
        candidate("empty", memory_limit_bytes=80 * GB),
        candidate("has-base", memory_limit_bytes=80 * GB, resident=base | {"x"},
                  resident_memory={"csm-1b": 9 * GB, "x": 1 * GB}),
        candidate("tight", memory_limit_bytes=10 * GB),
        candidate("one-slot", memory_limit_bytes=80 * GB, resident=frozenset({"y"}),
                  resident_cap=2),
    ]  # fmt: skip
    needs, base_bytes = 300_000_000, known_size("csm-1b", workers)
    assert base_bytes == 9 * GB
    picks = place("narrator", "csm", 4, workers, needs_bytes=needs,
                  base_model="csm-1b", base_bytes=base_bytes)  # fmt: skip
    # Beside its base first, though that worker holds the most models; where the base
    # would have to load, it must fit too (not on "tight") and take a slot of its own.
    assert [c.pod for c in picks] == ["has-base", "empty", "tight", "one-slot"]
    # Without a base the same workers rank by fill alone.
    assert place("plain", "csm", 4, workers, needs_bytes=needs)[0].pod == "empty"


def test_placement_respects_pools_and_labels() -> None:
    workers = [
        candidate("a", pool="gpu-a", labels={"zone": "1"}),
        candidate("b", pool="gpu-b", labels={"zone": "2"}),
    ]
    assert [c.pod for c in place("m", "csm", 2, workers, pools=["gpu-b"])] == ["b"]
    assert [c.pod for c in place("m", "csm", 2, workers, match_labels={"zone": "1"})] == ["a"]


NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def lease(pod: str, models: dict[str, str], renewed_ago_s: float = 1) -> LeaseView:
    state = WorkerState(
        families=["piper"],
        resident=[ResidentModel(id=m, state=s, load_ms=900) for m, s in models.items()],
    )
    return LeaseView(
        pod, "voice", "cpu", f"{pod}:7001", state, NOW - timedelta(seconds=renewed_ago_s), 10
    )


@pytest.mark.parametrize(
    ("min_resident", "leases", "phase", "copies"),
    [
        (1, [lease("w0", {"m": "ready"})], "Ready", 1),
        (2, [lease("w0", {"m": "ready"}), lease("w1", {"m": "loading"})], "Loading", 1),
        (2, [lease("w0", {"m": "ready"})], "Degraded", 1),
        (1, [lease("w0", {"other": "ready"})], "Pending", 0),
        (0, [], "Standby", 0),
        (1, [lease("w0", {"m": "ready"}, renewed_ago_s=11)], "Pending", 0),  # dead Lease
    ],
)
def test_voicemodel_status(
    min_resident: int, leases: list[LeaseView], phase: str, copies: int
) -> None:
    status = voicemodel_status("m", min_resident, leases, NOW, generation=3)
    assert (status["phase"], status["residentCopies"]) == (phase, copies)
    assert status["observedGeneration"] == 3
    assert status["conditions"][0]["status"] == (
        "True" if phase in ("Ready", "Standby") else "False"
    )


def test_status_lists_resident_copies_and_reports_invalid_specs() -> None:
    status = voicemodel_status(
        "m", 1, [lease("w1", {"m": "ready"}), lease("w0", {"m": "loading"})], NOW
    )
    assert [(r["pod"], r["state"], r["loadMs"]) for r in status["resident"]] == [
        ("w0", "loading", 900),
        ("w1", "ready", 900),
    ]
    invalid = voicemodel_status("m", 1, [], NOW, invalid="no pool runs family 'csm'")
    assert invalid["phase"] == "Failed"
    assert invalid["conditions"][0]["reason"] == "InvalidSpec"


def test_a_load_no_lease_shows_yet_is_loading_and_transition_times_stay_put() -> None:
    loading = voicemodel_status("m", 1, [lease("w0", {})], NOW, loading_on=[("cpu", "w0")])
    assert loading["phase"] == "Loading"
    assert loading["resident"] == [{"worker": "cpu", "pod": "w0", "state": "loading"}]
    later = NOW + timedelta(seconds=30)
    fresh = [lease("w0", {"m": "ready"}, renewed_ago_s=-29)]  # renewed at NOW + 29 s
    ready = voicemodel_status("m", 1, fresh, later, previous=loading)
    assert ready["phase"] == "Ready"
    since = ready["conditions"][0]["lastTransitionTime"]
    assert since == "2026-11-21T12:00:30.000000Z"  # False -> True: a transition
    again = voicemodel_status("m", 1, fresh, later + timedelta(seconds=5), previous=ready)
    assert again["conditions"][0]["lastTransitionTime"] == since
    # Nothing changed, nothing to write: steady VoiceModels cost the API server nothing.
    assert status_changes(ready, again) == {}
    assert status_changes(loading, ready).keys() == {
        "phase",
        "residentCopies",
        "resident",
        "conditions",
    }


def test_placement_spreads_a_burst_over_the_workers() -> None:
    """Loads just issued count towards a worker's fill (the Lease shows them later)."""
    workers = [candidate("a"), candidate("b")]
    pending: dict[str, frozenset[str]] = {"a": frozenset(), "b": frozenset()}
    for i in range(6):
        model = f"m{i}"
        view = [replace(c, resident=c.resident | pending[c.pod]) for c in workers]
        (pick,) = place(model, "csm", 1, view)
        pending[pick.pod] |= {model}
    assert {pod: len(models) for pod, models in pending.items()} == {"a": 3, "b": 3}


async def test_a_shared_listing_lists_once_for_concurrent_readers_and_then_again() -> None:
    calls: list[str] = []
    clock = [0.0]

    async def fetch(namespace: str) -> list[str]:
        calls.append(namespace)
        await asyncio.sleep(0.01)
        if namespace == "broken":
            raise OSError("connection refused")
        return [f"{namespace}-{len(calls)}"]

    listing = SharedListing(fetch, max_age_s=1.0, clock=lambda: clock[0])
    assert await asyncio.gather(*(listing.get("voice") for _ in range(50))) == [["voice-1"]] * 50
    clock[0] = 0.9
    assert await listing.get("voice") == ["voice-1"]
    clock[0] = 1.0
    assert await listing.get("voice") == ["voice-2"]
    assert await listing.get("other") == ["other-3"]
    for _ in range(2):  # a failure is not kept
        with pytest.raises(OSError, match="refused"):
            await listing.get("broken")
    assert calls == ["voice", "voice", "other", "broken", "broken"]


async def test_a_listing_failing_after_its_readers_left_leaves_no_failed_task() -> None:
    """kopf re-raises, at shutdown, the error of any task still running when its
    handlers stopped: a listing that failed then (its client closed) exited 1."""
    closed = asyncio.Event()

    async def fetch(namespace: str) -> list[str]:
        await closed.wait()
        raise AssertionError("the client is closed")  # what aiohttp raises then

    listing: SharedListing[list[str]] = SharedListing(fetch)
    reader = asyncio.create_task(listing.get("voice"))
    await asyncio.sleep(0)
    spawned = asyncio.all_tasks() - {reader, asyncio.current_task()}
    reader.cancel()  # the handler is stopped ...
    closed.set()  # ... then the client closed under the listing
    await asyncio.wait(spawned, timeout=5)
    assert spawned
    assert all(t.done() and not t.cancelled() and t.exception() is None for t in spawned)
    with pytest.raises(AssertionError, match="closed"):  # a reader still gets the error
        await listing.get("voice")


def test_voicemodel_problems_against_existing_pools() -> None:
    pools = [pool_resource("cpu"), pool_resource("gpu")]
    assert voicemodel_problems({"family": "piper"}, pools) == []
    assert (
        "no TTSWorker pool runs family 'parler'"
        in voicemodel_problems({"family": "parler"}, pools)[0]
    )
    assert (
        "among pools ['cpu']"
        in voicemodel_problems({"family": "csm", "workerSelector": {"pools": ["cpu"]}}, pools)[0]
    )
    assert (
        "needs spec.baseModel" in voicemodel_problems({"family": "csm", "tags": ["lora"]}, pools)[0]
    )
    cpu_only = voicemodel_problems(
        {"family": "piper", "resources": {"estimatedVramGB": 2}}, [pool_resource("cpu")]
    )
    assert "CPU-only" in cpu_only[0]


def test_worker_pods_mount_the_wire_secret_and_probe_a_plaintext_health_port() -> None:
    plain = statefulset(PoolSpec.from_resource(pool_resource("cpu")))
    secured = statefulset(
        PoolSpec.from_resource(pool_resource("cpu"), wire=WorkerWire("duplex-grpc", True, True))
    )
    for manifest in (plain, secured):
        assert pod_spec(manifest)["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    plain_container = pod_spec(plain)["containers"][0]
    assert plain_container["readinessProbe"]["grpc"]["port"] == 7001
    assert not any(v["name"] == "grpc-auth" for v in pod_spec(plain)["volumes"])

    container = pod_spec(secured)["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["DUPLEX_GRPC_TLS_CERT"] == "/etc/duplex/grpc/tls.crt"
    assert env["DUPLEX_GRPC_TLS_CA"] == "/etc/duplex/grpc/ca.crt"
    assert env["DUPLEX_GRPC_TOKEN_FILE"] == "/etc/duplex/grpc/token"
    args = container["args"]
    assert args[args.index("--health-port") + 1] == "7002"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == 7002  # kubelet probes cannot speak TLS
    volume = next(v for v in pod_spec(secured)["volumes"] if v["name"] == "grpc-auth")
    assert volume["secret"]["secretName"] == "duplex-grpc"
    assert {"name": "grpc-auth", "mountPath": "/etc/duplex/grpc", "readOnly": True} in container[
        "volumeMounts"
    ]


def test_worker_wire_settings_come_from_json() -> None:
    assert WorkerWire.from_json("") == WorkerWire()
    assert WorkerWire.from_json('{"secret": "s", "tls": true}') == WorkerWire("s", True, False)
