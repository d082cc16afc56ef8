"""kmock's Kubernetes emulator set up as a cluster for duplex, and ``duplex-operator`` processes.

The emulator needs every resource the code touches declared (kopf hangs
without ``v1/namespaces``); it keeps no resourceVersion, so objects that kopf
patches carry a fixed one.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kopf
from kmock import KubernetesEmulator, Server

from duplex_operator.handlers import build_registry
from duplex_protocol.kube import KubeConfig
from tests.support.worker import ROOT, ChildProcess, WorkerProcess, free_port, start_worker

NS = "voice"
POOLS = f"/apis/duplex.dev/v1alpha1/namespaces/{NS}/ttsworkers"
MODELS = f"/apis/duplex.dev/v1alpha1/namespaces/{NS}/voicemodels"

RESOURCES = {
    "v1/namespaces": ("Namespace", False),
    "v1/events": ("Event", True),
    "coordination.k8s.io/v1/leases": ("Lease", True),
    "apps/v1/statefulsets": ("StatefulSet", True),
    "v1/services": ("Service", True),
    "v1/serviceaccounts": ("ServiceAccount", True),
    "rbac.authorization.k8s.io/v1/roles": ("Role", True),
    "rbac.authorization.k8s.io/v1/rolebindings": ("RoleBinding", True),
    "duplex.dev/v1alpha1/ttsworkers": ("TTSWorker", True),
    "duplex.dev/v1alpha1/voicemodels": ("VoiceModel", True),
}


def declare_cluster(kmock: Any) -> str:
    """Declare duplex's resources and namespace in the emulator; its URL."""
    for key, (kind, namespaced) in RESOURCES.items():
        kmock.resources[key].kind = kind
        kmock.resources[key].namespaced = namespaced
        kmock.resources[key].verbs = {"get", "list", "watch", "create", "patch", "delete"}
    kmock.objects[("v1/namespaces", None, NS)] = {"metadata": {"name": NS}}
    return str(kmock.url).rstrip("/")


def as_served(manifest: dict[str, Any], namespace: str = NS) -> dict[str, Any]:
    """The object with the metadata an API server would add and kmock does not.

    kopf keys its timers by uid, and its patches test the resourceVersion (which
    the emulator then keeps as given).
    """
    metadata = {
        "namespace": namespace,
        "uid": str(uuid.uuid4()),
        "resourceVersion": "1",
        "generation": 1,
        "creationTimestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        **manifest["metadata"],
    }
    return {**copy.deepcopy(manifest), "metadata": metadata}


def stored(kmock: Any, plural: str, name: str) -> dict[str, Any]:
    """The emulator's current object (empty when absent or deleted)."""
    for key, obj in kmock.objects.items():
        if plural in str(key[0]) and key[-1] == name and dict(obj):
            return dict(obj)
    return {}


def events(kmock: Any, reason: str) -> list[dict[str, Any]]:
    """The Events the emulator holds with this reason."""
    found = [dict(o) for k, o in kmock.objects.items() if "events" in str(k[0]) and dict(o)]
    return [e for e in found if e.get("reason") == reason]


@contextlib.asynccontextmanager
async def running_operator(url: str, kinds: tuple[str, ...]) -> AsyncIterator[None]:
    """The operator's handlers for ``kinds`` in this process (kopf), reconciling every 0.5 s."""
    settings = kopf.OperatorSettings()
    settings.watching.server_timeout = 10
    settings.posting.level = 20
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(
        kopf.operator(
            registry=build_registry(KubeConfig(url), reconcile_every_s=0.5, kinds=kinds),
            settings=settings,
            clusterwide=True,  # kmock 0.8 cannot parse the namespace scan (GET /api/v1/namespaces)
            standalone=True,
            stop_flag=stop,
            ready_flag=ready,
        )
    )
    try:
        await asyncio.wait_for(ready.wait(), 30)
        yield
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(task, 15)


def cpu_pool(replicas: int = 2) -> dict[str, Any]:
    """The TTSWorker ``cpu`` serving the mock family."""
    return {
        "apiVersion": "duplex.dev/v1alpha1",
        "kind": "TTSWorker",
        "metadata": {"name": "cpu"},
        "spec": {"image": "duplex/tts-worker", "families": ["mock"], "replicas": replicas},
    }


def start_pod_worker(
    url: str,
    pod: str,
    packs: Path,
    log_path: Path,
    *args: str,
    default_model: str = "mock",
    env: dict[str, str] | None = None,
) -> WorkerProcess:
    """A mock-family worker that writes its Lease as pod ``pod`` of the ``cpu`` pool would."""
    env = {
        **(env or {}),
        "DUPLEX_KUBE_URL": url,
        "POD_NAME": pod,
        "POD_NAMESPACE": NS,
        "POD_UID": f"uid-{pod}",
        "DUPLEX_POOL": "cpu",
        "POD_IP": "127.0.0.1",
    }
    flags = ["--adapter", "mock", "--default-model", default_model, "--voicepacks", str(packs)]
    flags += args
    return start_worker(flags, log_path, 120.0, env)


def start_operator(url: str, identity: str, log_path: Path, *args: str) -> ChildProcess:
    """A ``duplex-operator`` process (as a pod would run it) against the emulator.

    With ``--kubeconfig`` in ``args`` it finds the emulator through that file alone.
    """
    cmd = [
        sys.executable,
        "-m",
        "duplex_operator",
        "--metrics-port",
        "0",
        "--health-port",
        str(free_port()),
        "--identity",
        identity,
        "--lease-namespace",
        NS,
        "--all-namespaces",  # kmock cannot serve kopf's namespace scan
        *args,
    ]
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        cmd,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        env=operator_env(url, by_kubeconfig="--kubeconfig" in args),
    )
    return ChildProcess(process, log_path)


def operator_env(url: str, *, by_kubeconfig: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DUPLEX_KUBE_URL", "KUBECONFIG")}
    return {**env, "PYTHONUNBUFFERED": "1", **({} if by_kubeconfig else {"DUPLEX_KUBE_URL": url})}


class ForgetfulEmulator(KubernetesEmulator):
    """kmock's emulator that forgets each request once served, for long runs.

    kmock 0.8 keeps every request and matches each new one against that whole
    history, which makes a long run quadratic. Nothing asserts on the requests
    of a standalone emulator, so only those in flight are kept.
    """

    async def _handle(self, request: Any) -> Any:
        try:
            return await super()._handle(request)
        finally:
            self._requests[:] = [r for r in self._requests if r is not request]


async def _serve(port_file: Path) -> None:
    """Serve the emulator until killed; write its URL to ``port_file`` once listening."""
    async with ForgetfulEmulator() as kmock, Server(kmock):
        url = declare_cluster(kmock)
        await asyncio.to_thread(port_file.write_text, url)
        await asyncio.Event().wait()


def start_emulator(log_path: Path, timeout_s: float = 30.0) -> tuple[ChildProcess, str]:
    """kmock's emulator in its own process (as an API server is): the process and its URL."""
    url_file = log_path.with_suffix(".url")
    url_file.unlink(missing_ok=True)
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.emulator", str(url_file)],
        stdout=log_file,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    emulator = ChildProcess(process, log_path)
    deadline = time.monotonic() + timeout_s
    while not url_file.exists() or not url_file.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            emulator.stop()
            raise RuntimeError(f"the emulator did not start:\n{emulator.log()}")
        time.sleep(0.05)
    return emulator, url_file.read_text()


if __name__ == "__main__":
    asyncio.run(_serve(Path(sys.argv[1])))
