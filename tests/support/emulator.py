"""kmock's Kubernetes emulator set up as a cluster for duplex, and ``duplex-operator`` processes.

The emulator needs every resource the code touches declared (kopf hangs
without ``v1/namespaces``); it keeps no resourceVersion, so objects that kopf
patches carry a fixed one.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.worker import ROOT, ChildProcess, free_port

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


def stored(kmock: Any, plural: str, name: str) -> dict[str, Any]:
    """The emulator's current object (empty when absent or deleted)."""
    for key, obj in kmock.objects.items():
        if plural in str(key[0]) and key[-1] == name and dict(obj):
            return dict(obj)
    return {}


def start_operator(url: str, identity: str, log_path: Path, *args: str) -> ChildProcess:
    """A ``duplex-operator`` process (as a pod would run it) against the emulator."""
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
        *args,
    ]
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        cmd,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "DUPLEX_KUBE_URL": url},
    )
    return ChildProcess(process, log_path)
