"""TTSWorker → StatefulSet, headless Service, ServiceAccount, Role and RoleBinding: pure builders.

One pod per GPU: a GPU pool requests ``gpu.count`` of the device plugin's
resource per pod (1 by default), so N GPUs make N pods, each a stable
StatefulSet name behind a headless Service. CPU pools request no GPU. A pool
without ``spec.image`` gets the first catalog image whose engines serve all
its families (``images.pick_image``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from duplex_operator.images import WorkerImage, pick_image
from duplex_protocol.lease import LABELS, LEASE_DURATION_S, POOL_LABEL, lease_name

GRPC_PORT = 7001
HEALTH_PORT = 7002
METRICS_PORT = 9101
WIRE_MOUNT = "/etc/duplex/grpc"
VOICEPACKS = "/app/voicepacks"
SERVICE = "duplex.tts.v1.TTS"
DRAIN_TIMEOUT_S = 20
"""How long a stopping worker waits for its open sessions to end."""


@dataclass(frozen=True)
class WorkerWire:
    """How worker gRPC is secured: a Secret (tls.crt, tls.key, ca.crt, token) in every pod.

    From the operator's ``DUPLEX_WORKER_WIRE`` ('{"secret": NAME, "tls": true,
    "token": true}', rendered by the chart); empty: plaintext, no token.
    """

    secret: str = ""
    tls: bool = False
    token: bool = False

    @staticmethod
    def from_json(text: str) -> WorkerWire:
        if not text.strip():
            return WorkerWire()
        data = json.loads(text)
        return WorkerWire(
            str(data.get("secret") or ""), bool(data.get("tls")), bool(data.get("token"))
        )


@dataclass
class PoolSpec:
    """A TTSWorker's spec with the CRD's defaults applied."""

    name: str
    namespace: str
    image: str
    families: list[str]
    replicas: int = 1
    device: str = "cpu"
    gpu_count: int = 1
    gpu_resource: str = "nvidia.com/gpu"
    image_pull_policy: str = "IfNotPresent"
    model_manager: dict[str, Any] = field(default_factory=dict)
    resources: dict[str, Any] = field(default_factory=dict)
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, Any]] = field(default_factory=list)
    affinity: dict[str, Any] = field(default_factory=dict)
    uid: str = ""
    user_labels: dict[str, str] = field(default_factory=dict)
    """The TTSWorker's own labels: its pods carry them (VoiceModel workerSelector)."""
    wire: WorkerWire = field(default_factory=WorkerWire)

    @staticmethod
    def from_resource(
        body: dict[str, Any],
        images: Sequence[WorkerImage] = (),
        wire: WorkerWire | None = None,
    ) -> PoolSpec:
        """The spec with defaults; no ``spec.image``: picked from ``images`` by families."""
        meta, spec = body["metadata"], body["spec"]
        device = spec.get("device", "cpu")
        gpu = spec.get("gpu") or {}
        return PoolSpec(
            name=meta["name"],
            namespace=meta.get("namespace", "default"),
            uid=meta.get("uid", ""),
            user_labels=dict(meta.get("labels") or {}),
            wire=wire or WorkerWire(),
            image=spec.get("image") or pick_image(spec["families"], device, images),
            families=list(spec["families"]),
            replicas=int(spec.get("replicas", 1)),
            device=device,
            gpu_count=int(gpu.get("count", 1)),
            gpu_resource=gpu.get("resourceName", "nvidia.com/gpu"),
            image_pull_policy=spec.get("imagePullPolicy", "IfNotPresent"),
            model_manager=dict(spec.get("modelManager") or {}),
            resources=dict(spec.get("resources") or {}),
            node_selector=dict(spec.get("nodeSelector") or {}),
            tolerations=list(spec.get("tolerations") or []),
            affinity=dict(spec.get("affinity") or {}),
        )

    @property
    def labels(self) -> dict[str, str]:
        """What selects this pool's objects (fixed: a StatefulSet selector cannot change)."""
        return {**LABELS, POOL_LABEL: self.name}

    @property
    def pod_labels(self) -> dict[str, str]:
        """What the pods carry: the pool's own labels, then duplex's."""
        return pod_labels(self.name, self.user_labels)

    @property
    def gpu(self) -> bool:
        return self.device == "cuda"


def pod_labels(pool_name: str, user_labels: Mapping[str, str]) -> dict[str, str]:
    """Labels of a pool's worker pods; placement matches ``workerSelector`` against them."""
    return {**user_labels, **LABELS, POOL_LABEL: pool_name}


def _meta(pool: PoolSpec, name: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": pool.namespace, "labels": pool.labels}
    if pool.uid:
        meta["ownerReferences"] = [
            {
                "apiVersion": "duplex.dev/v1alpha1",
                "kind": "TTSWorker",
                "name": pool.name,
                "uid": pool.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    return meta


def worker_args(pool: PoolSpec) -> list[str]:
    """duplex-tts-worker flags from the pool's modelManager settings."""
    mm = pool.model_manager
    args = [
        "--adapter",
        ",".join(pool.families),
        "--host",
        "0.0.0.0",
        "--port",
        str(GRPC_PORT),
        "--metrics-port",
        str(METRICS_PORT),
        "--device",
        pool.device,
        "--voicepacks",
        VOICEPACKS,
        # SIGTERM (scale-down, rollout) lets open sessions end; the pod's grace period is longer.
        "--drain-timeout-s",
        str(DRAIN_TIMEOUT_S),
    ]
    if mm.get("defaultModel"):
        args += ["--default-model", mm["defaultModel"]]
    if mm.get("preload"):
        args += ["--preload-models", ",".join(mm["preload"])]
    for key, flag, scale in (
        ("ttlSeconds", "--ttl-ms", 1000),
        ("minResidencySeconds", "--min-residency-ms", 1000),
        ("residentCap", "--resident-cap", 1),
        ("maxParallelLoads", "--max-parallel-loads", 1),
    ):
        if key in mm:
            args += [flag, str(int(mm[key]) * scale)]
    return args


def _resources(pool: PoolSpec) -> dict[str, Any]:
    requests = dict(pool.resources.get("requests") or {})
    limits = dict(pool.resources.get("limits") or {})
    if pool.gpu:  # extended resources: request == limit, set through limits
        limits[pool.gpu_resource] = pool.gpu_count
    out: dict[str, Any] = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def _tolerations(pool: PoolSpec) -> list[dict[str, Any]]:
    tolerations = list(pool.tolerations)
    if pool.gpu and not any(t.get("key") == pool.gpu_resource for t in tolerations):
        # GPU nodes are commonly tainted with the device plugin's resource name.
        tolerations.append({"key": pool.gpu_resource, "operator": "Exists", "effect": "NoSchedule"})
    return tolerations


def _env() -> list[dict[str, Any]]:
    def field_ref(name: str, path: str) -> dict[str, Any]:
        return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}

    return [
        field_ref("POD_NAME", "metadata.name"),
        field_ref("POD_NAMESPACE", "metadata.namespace"),
        field_ref("POD_UID", "metadata.uid"),
        field_ref("POD_IP", "status.podIP"),
        field_ref("NODE_NAME", "spec.nodeName"),
        field_ref("DUPLEX_POOL", "metadata.labels['duplex.dev/pool']"),
    ]


def _wire(pool: PoolSpec) -> tuple[list[dict[str, Any]], list[str]]:
    """Env and extra args that point the worker at its mounted TLS files and token."""
    env, files = [], []
    if pool.wire.tls:
        files += [("DUPLEX_GRPC_TLS_CERT", "tls.crt"), ("DUPLEX_GRPC_TLS_KEY", "tls.key")]
        files += [("DUPLEX_GRPC_TLS_CA", "ca.crt")]
    if pool.wire.token:
        files.append(("DUPLEX_GRPC_TOKEN_FILE", "token"))
    for name, key in files:
        env.append({"name": name, "value": f"{WIRE_MOUNT}/{key}"})
    # Kubelet's gRPC probes speak no TLS: health gets its own plaintext port.
    args = ["--health-port", str(HEALTH_PORT)] if pool.wire.tls else []
    return env, args


def statefulset(pool: PoolSpec) -> dict[str, Any]:
    wire_env, wire_args = _wire(pool)
    probe_port = HEALTH_PORT if pool.wire.tls else GRPC_PORT
    grpc_probe = {"grpc": {"port": probe_port, "service": SERVICE}}
    container: dict[str, Any] = {
        "name": "tts-worker",
        "image": pool.image,
        "imagePullPolicy": pool.image_pull_policy,
        "args": worker_args(pool) + wire_args,
        "ports": [
            {"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
        ],
        "env": _env() + wire_env,
        # Loading and warming the default model can take minutes on big GPU models.
        "startupProbe": {**grpc_probe, "periodSeconds": 5, "failureThreshold": 120},
        "readinessProbe": {**grpc_probe, "periodSeconds": 5},
        "livenessProbe": {"grpc": {"port": probe_port}, "periodSeconds": 10, "failureThreshold": 3},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    if pool.wire.tls:
        container["ports"].append(
            {"name": "health", "containerPort": HEALTH_PORT, "protocol": "TCP"}
        )
    resources = _resources(pool)
    if resources:
        container["resources"] = resources
    pod_spec: dict[str, Any] = {
        "serviceAccountName": f"{pool.name}-tts-worker",
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "fsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "terminationGracePeriodSeconds": DRAIN_TIMEOUT_S + 10,
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {}}],
    }
    if pool.wire.secret:
        pod_spec["volumes"].append(
            {"name": "grpc-auth", "secret": {"secretName": pool.wire.secret, "defaultMode": 0o440}}
        )
        container["volumeMounts"].append(
            {"name": "grpc-auth", "mountPath": WIRE_MOUNT, "readOnly": True}
        )
    if pool.node_selector:
        pod_spec["nodeSelector"] = pool.node_selector
    tolerations = _tolerations(pool)
    if tolerations:
        pod_spec["tolerations"] = tolerations
    if pool.affinity:
        pod_spec["affinity"] = pool.affinity
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _meta(pool, statefulset_name(pool.name)),
        "spec": {
            "serviceName": statefulset_name(pool.name),
            "replicas": pool.replicas,
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": pool.labels},
            "template": {
                "metadata": {
                    "labels": pool.pod_labels,
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(METRICS_PORT),
                    },
                },
                "spec": pod_spec,
            },
        },
    }


def headless_service(pool: PoolSpec) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(pool, statefulset_name(pool.name)),
        "spec": {
            "clusterIP": "None",
            "selector": pool.labels,
            "ports": [
                {"name": "grpc", "port": GRPC_PORT, "targetPort": "grpc"},
                {"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics"},
            ],
        },
    }


def service_account(pool: PoolSpec) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _meta(pool, f"{pool.name}-tts-worker"),
    }


def statefulset_name(pool_name: str) -> str:
    """The pool's StatefulSet (and headless Service); its pods are ``<this>-<ordinal>``."""
    return f"{pool_name}-tts"


def pod_names(pool: PoolSpec) -> list[str]:
    """The StatefulSet's pods, by ordinal."""
    return [f"{statefulset_name(pool.name)}-{i}" for i in range(pool.replicas)]


def vacant_leases(pool: PoolSpec) -> list[dict[str, Any]]:
    """One vacant Lease per pod, created by the operator: a worker may then touch its own
    Lease by name only (RBAC cannot limit ``create`` to a name)."""
    return [
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {**_meta(pool, lease_name(pod)), "labels": pool.labels},
            "spec": {"leaseDurationSeconds": LEASE_DURATION_S},
        }
        for pod in pod_names(pool)
    ]


def worker_role(pool: PoolSpec) -> list[dict[str, Any]]:
    """Least privilege for a worker: its own Lease and its own Pod, by name."""
    name = f"{pool.name}-tts-worker"
    pods = pod_names(pool)
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _meta(pool, name),
        "rules": [
            {
                "apiGroups": ["coordination.k8s.io"],
                "resources": ["leases"],
                "resourceNames": [lease_name(pod) for pod in pods],
                "verbs": ["get", "patch"],
            },
            {"apiGroups": [""], "resources": ["pods"], "resourceNames": pods, "verbs": ["get"]},
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _meta(pool, name),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": pool.namespace}],
    }
    return [role, binding]
