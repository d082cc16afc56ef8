"""Finding the cluster the standard way: kubeconfig contexts, tokens, exec plugins, the operator.

Real HTTP: two small API stand-ins record the Authorization header each
request brings, so a context is shown to pick its cluster and its
credentials (a static token, or one an exec plugin prints, as cloud
providers' plugins do). Then ``duplex-operator --standalone --kubeconfig``
reconciles a pool in kmock's emulator with nothing but that file.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from duplex_protocol.kube import KubeClient, KubeConfig, KubeConfigError, leases_path
from tests.support.emulator import (
    POOLS,
    as_served,
    cpu_pool,
    declare_cluster,
    start_operator,
    stored,
)
from tests.support.waiting import eventually
from tests.support.worker import ROOT

PLUGIN = (
    "import json; print(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1beta1',"
    " 'kind': 'ExecCredential', 'status': {'token': 'from-plugin'}}))"
)


def kubeconfig(path: Path, clusters: dict[str, str], current: str) -> Path:
    """One context per cluster: ``static`` has a token, ``plugin`` an exec plugin."""
    users = {
        "static": {"token": "static-token"},
        "plugin": {
            "exec": {
                "apiVersion": "client.authentication.k8s.io/v1beta1",
                "command": sys.executable,
                "args": ["-c", PLUGIN],
            }
        },
    }
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": current,
        "clusters": [{"name": n, "cluster": {"server": url}} for n, url in clusters.items()],
        "users": [{"name": n, "user": users[n]} for n in clusters],
        "contexts": [{"name": n, "context": {"cluster": n, "user": n}} for n in clusters],
    }
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
async def stand_ins() -> AsyncIterator[dict[str, Any]]:
    """Two API servers answering a Lease list, each recording who called."""
    seen: dict[str, list[str]] = {"static": [], "plugin": []}
    runners, urls = [], {}
    for name in seen:

        async def leases(request: web.Request, name: str = name) -> web.Response:
            seen[name].append(request.headers.get("Authorization", ""))
            return web.json_response({"kind": "LeaseList", "items": []})

        app = web.Application()
        app.router.add_get("/apis/coordination.k8s.io/v1/namespaces/voice/leases", leases)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        runners.append(runner)
        urls[name] = f"http://127.0.0.1:{port}"
    yield {"seen": seen, "urls": urls}
    for runner in runners:
        await runner.cleanup()


async def test_a_context_picks_its_cluster_and_credentials(
    stand_ins: dict[str, Any], tmp_path: Path
) -> None:
    path = kubeconfig(tmp_path / "config", stand_ins["urls"], current="static")
    for context in ("", "plugin"):  # the current-context, then one named
        client = KubeClient(KubeConfig(kubeconfig=str(path), context=context))
        try:
            listing = await client.get(leases_path("voice"))
        finally:
            await client.close()
        assert listing["items"] == []
    assert stand_ins["seen"] == {
        "static": ["Bearer static-token"],
        "plugin": ["Bearer from-plugin"],  # printed by the exec plugin when asked
    }
    with pytest.raises(KubeConfigError, match="missing"):
        await KubeConfig(kubeconfig=str(path), context="missing").configuration()


def test_detect_prefers_flags_then_duplex_url_then_kubeconfig(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    (home / ".kube").mkdir(parents=True)
    for var in ("DUPLEX_KUBE_URL", "KUBECONFIG", "KUBERNETES_SERVICE_HOST"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(home))
    assert KubeConfig.detect() is None  # no cluster anywhere
    (home / ".kube" / "config").write_text("{}")
    assert KubeConfig.detect(context="kind-duplex") == KubeConfig(
        kubeconfig=str(home / ".kube" / "config"), context="kind-duplex"
    )
    monkeypatch.setenv("KUBECONFIG", "/a:/b")
    assert KubeConfig.detect() == KubeConfig(kubeconfig="/a:/b")
    monkeypatch.setenv("DUPLEX_KUBE_URL", "http://127.0.0.1:8001/")
    assert KubeConfig.detect() == KubeConfig(url="http://127.0.0.1:8001")
    assert KubeConfig.detect("/c") == KubeConfig(kubeconfig="/c")


def test_the_operator_says_what_is_wrong_with_a_kubeconfig(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path / "config", {"static": "http://127.0.0.1:9"}, current="static")
    run = subprocess.run(
        [sys.executable, "-m", "duplex_operator", "--kubeconfig", str(path), "--context", "nope"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert run.returncode == 2
    assert "duplex-operator: cannot use the cluster:" in run.stderr
    assert "nope" in run.stderr


async def test_the_standalone_operator_needs_nothing_but_a_kubeconfig(
    kmock: Any, tmp_path: Path
) -> None:
    url = declare_cluster(kmock)
    path = kubeconfig(tmp_path / "config", {"plugin": url}, current="plugin")
    operator = start_operator(
        url, "op", tmp_path / "op.log", "--standalone", "--kubeconfig", str(path)
    )
    client = KubeClient(KubeConfig(kubeconfig=str(path)))
    try:
        await client.create(POOLS, as_served(cpu_pool(replicas=2)))
        await eventually(lambda: bool(stored(kmock, "statefulsets", "cpu-tts")), 60)
        assert stored(kmock, "statefulsets", "cpu-tts")["spec"]["replicas"] == 2
        assert operator.process.poll() is None
    finally:
        await client.close()
        await asyncio.to_thread(operator.stop)
