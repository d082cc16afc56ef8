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
from pathlib import Path

from tests.support.emulator import start_pod_worker
from tests.support.voicepacks import write_mock_pack

SLOW = ("kubernetes_asyncio", "scipy.signal", "pyloudnorm")


def _imports(package: str, line: str) -> bool:
    """A line of ``-X importtime`` (``import time: self | cumulative |   name``) for it."""
    return line.startswith("import time:") and line.rsplit("|", 1)[-1].strip().startswith(package)


def _probe(code: str) -> str:
    """The last line ``code`` prints in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return out.stdout.strip().splitlines()[-1]


def _loaded_after_import(module: str) -> list[str]:
    code = f"import sys, json, {module}; "
    code += f"print(json.dumps(sorted(m for m in {SLOW!r} if m in sys.modules)))"
    loaded: list[str] = json.loads(_probe(code))
    return loaded


def test_the_worker_process_starts_without_the_kubernetes_client_or_scipy() -> None:
    assert _loaded_after_import("duplex_tts.app") == []


def test_the_orchestrator_process_starts_without_the_kubernetes_client_or_scipy() -> None:
    assert _loaded_after_import("duplex_orchestrator.app") == []


def test_the_kubernetes_client_is_loaded_when_a_client_is_made() -> None:
    code = (
        "import sys; from duplex_protocol.kube import KubeClient, KubeConfig; "
        "KubeClient(KubeConfig('http://127.0.0.1:1')); "
        "print('kubernetes_asyncio.client' in sys.modules)"
    )
    assert _probe(code) == "True"


def test_a_pod_worker_loads_its_cluster_client_before_it_serves(k8s: str, tmp_path: Path) -> None:
    """Not on the event loop after SERVING, where the first sessions would wait for it
    (and the memory it takes would land on their models' account)."""
    packs = tmp_path / "packs"
    write_mock_pack(packs, "mock")
    log = tmp_path / "worker.log"
    worker = start_pod_worker(k8s, "imports-0", packs, log, env={"PYTHONPROFILEIMPORTTIME": "1"})
    worker.stop()
    lines = log.read_text().splitlines()
    imported = next(i for i, line in enumerate(lines) if _imports("kubernetes_asyncio", line))
    ready = next(i for i, line in enumerate(lines) if '"event": "ready"' in line)
    assert imported < ready
