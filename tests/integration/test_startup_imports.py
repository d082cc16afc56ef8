"""A worker and an orchestrator without a cluster start without the slow imports.

kubernetes_asyncio loads every API model when imported and pyloudnorm pulls in
scipy.signal: each ~3 s on a small CPU, paid at every start (and every
restart after a crash) though a worker that stops at a bad flag, or an
orchestrator whose lab is never asked to measure, needs neither.
"""

from __future__ import annotations

import json
import subprocess
import sys

SLOW = ("kubernetes_asyncio", "scipy.signal", "pyloudnorm")


def _loaded_after_import(module: str) -> list[str]:
    probe = (
        f"import sys, json, {module}; "
        f"print(json.dumps(sorted(m for m in {SLOW!r} if m in sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    loaded: list[str] = json.loads(out.stdout.strip().splitlines()[-1])
    return loaded


def test_the_worker_process_starts_without_the_kubernetes_client_or_scipy() -> None:
    assert _loaded_after_import("duplex_tts.app") == []


def test_the_orchestrator_process_starts_without_the_kubernetes_client_or_scipy() -> None:
    assert _loaded_after_import("duplex_orchestrator.app") == []


def test_the_kubernetes_client_is_loaded_when_a_client_is_made() -> None:
    probe = (
        "import sys; from duplex_protocol.kube import KubeClient, KubeConfig; "
        "KubeClient(KubeConfig('http://127.0.0.1:1')); "
        "print('kubernetes_asyncio.client' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "True"
