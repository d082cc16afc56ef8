"""compose.yaml (one GPU host, no Kubernetes) agrees with the Dockerfiles, Makefile and CLIs.

No Docker engine runs here, so the file is checked against what it names:
each image is the one its Dockerfile builds (same build args as ``make``),
each command is accepted by the real CLI's parser and config validation,
published and probed ports are the ones the processes listen on and the
Dockerfiles expose, workers the orchestrator dials exist, and the GPU worker
reserves the NVIDIA device and runs on it.
"""

from __future__ import annotations

import re
from typing import Any, cast

import pytest
import yaml

from duplex_orchestrator.cli import orchestrator_parser
from duplex_orchestrator.config import build_config
from duplex_tts.cli import load_config as worker_config
from duplex_tts.config import WorkerConfig
from tests.support.crd import ROOT

COMPOSE = ROOT / "compose.yaml"
_VARIABLE = re.compile(r"\$\{(\w+)(?::?[-?])?([^}]*)\}")


def interpolate(text: str) -> str:
    """Compose's ``${NAME:-default}`` with nothing set: the default (``:?`` has none)."""
    return _VARIABLE.sub(lambda m: "" if "?" in m.group(0) else m.group(2), text)


def services() -> dict[str, dict[str, Any]]:
    compose = yaml.safe_load(interpolate(COMPOSE.read_text()))
    return cast(dict[str, dict[str, Any]], compose["services"])


def dockerfile(service: dict[str, Any]) -> str:
    build = service["build"]
    assert build["context"] == "."
    return (ROOT / str(build["dockerfile"])).read_text()


def exposed(text: str) -> set[int]:
    return {int(p) for line in re.findall(r"^EXPOSE (.+)$", text, re.M) for p in line.split()}


def entrypoint(text: str) -> str:
    match = re.search(r'^ENTRYPOINT \["([^"]+)"\]', text, re.M)
    assert match
    return match.group(1)


def published(service: dict[str, Any]) -> dict[int, str]:
    """Container port → the host address it is published on (all addresses when none)."""
    out = {}
    for spec in service.get("ports", []):
        parts = str(spec).split(":")
        out[int(parts[-1])] = parts[0] if len(parts) == 3 else "0.0.0.0"
    return out


def worker(name: str) -> WorkerConfig:
    return worker_config(services()[name]["command"])


def test_images_are_the_ones_make_builds() -> None:
    found = services()
    makefile = (ROOT / "Makefile").read_text()
    torch_engines = re.search(r"^TORCH_IMAGE_ENGINES \?= (.*)$", makefile, re.M)
    cpu_engines = re.search(r"^ENGINES \?= (.*)$", makefile, re.M)
    assert torch_engines
    assert cpu_engines
    expected = {
        "orchestrator": ("duplex/orchestrator", "services/orchestrator/Dockerfile", {}),
        "tts-cpu": (
            "duplex/tts-worker",
            "services/tts-worker/Dockerfile",
            {"ENGINES": cpu_engines.group(1)},
        ),
        "tts-gpu": (
            "duplex/tts-worker-torch",
            "services/tts-worker/Dockerfile",
            {"EXTRAS": "torch", "ENGINES": torch_engines.group(1)},
        ),
    }
    assert set(found) == set(expected)
    for name, (image, path, args) in expected.items():
        assert found[name]["image"] == f"{image}:dev", name
        assert found[name]["build"]["dockerfile"] == path, name
        assert found[name]["build"].get("args", {}) == args, name
        assert f"-t {image}:$(IMAGE_TAG)" in makefile, name


def test_worker_commands_are_valid_and_serve_what_their_image_installs() -> None:
    for name in ("tts-cpu", "tts-gpu"):
        text = dockerfile(services()[name])
        assert entrypoint(text) == "duplex-tts-worker"
        config = worker(name)
        engines = set(services()[name]["build"]["args"]["ENGINES"].split())
        assert set(config.adapters) <= engines, name
        assert {config.port, config.metrics_port} <= exposed(text), name
    cpu = worker("tts-cpu")
    pack = ROOT / "voicepacks" / "piper" / "en-us-joe-medium" / "metadata.yaml"
    assert yaml.safe_load(pack.read_text())["id"] == cpu.default_model
    assert str(cpu.voicepacks) == "/app/voicepacks"  # where the Dockerfile copies them
    assert "COPY voicepacks /app/voicepacks" in dockerfile(services()["tts-cpu"])


def test_the_gpu_worker_reserves_the_nvidia_device_and_runs_on_it() -> None:
    gpu = services()["tts-gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    config = worker("tts-gpu")
    assert config.device == "cuda"
    assert set(config.adapters) <= {"csm", "xtts", "cosyvoice"}  # the torch families
    mount = gpu["volumes"][0]
    assert mount.endswith(f":{config.voicepacks}:ro")
    assert [n for n, s in services().items() if "deploy" in s] == ["tts-gpu"]  # the one GPU


def test_the_orchestrator_dials_the_workers_and_publishes_on_loopback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    orchestrator = services()["orchestrator"]
    text = dockerfile(orchestrator)
    assert entrypoint(text) == "duplex-orchestrator"
    monkeypatch.setenv("DUPLEX_API_KEY", "from-dot-env")
    args = vars(orchestrator_parser().parse_args(orchestrator["command"]))
    args.pop("config")
    config = build_config(args, None)
    assert not config.dev  # the API key is required
    assert "DUPLEX_API_KEY" in orchestrator["environment"]
    assert ":?" in COMPOSE.read_text().split("DUPLEX_API_KEY:", 1)[1].splitlines()[0]
    assert config.port in exposed(text)
    assert published(orchestrator) == {config.port: "127.0.0.1"}
    dialled = {w.rsplit(":", 1)[0]: int(w.rsplit(":", 1)[1]) for w in config.workers}
    assert dialled == {"tts-cpu": worker("tts-cpu").port, "tts-gpu": worker("tts-gpu").port}
    # It starts once the CPU worker is ready; the GPU worker joins when its model is warm.
    assert orchestrator["depends_on"] == {"tts-cpu": {"condition": "service_healthy"}}


def test_health_checks_probe_the_ports_the_processes_listen_on() -> None:
    found = services()
    for name in ("tts-cpu", "tts-gpu"):
        test = found[name]["healthcheck"]["test"]
        assert test[:4] == ["CMD", "python", "-m", "duplex_tts.probe"], name
        assert test[4] == f"127.0.0.1:{worker(name).port}", name
    check = " ".join(found["orchestrator"]["healthcheck"]["test"])
    port = int(next(a for a in found["orchestrator"]["command"] if a.startswith("--port="))[7:])
    assert f"http://127.0.0.1:{port}/healthz" in check
    for service in found.values():
        assert service["restart"] == "unless-stopped"
        assert set(service["healthcheck"]) >= {"interval", "timeout", "retries", "start_period"}


def test_metrics_are_published_on_loopback_only_on_distinct_host_ports() -> None:
    for name in ("tts-cpu", "tts-gpu"):
        ports = published(services()[name])
        assert ports == {worker(name).metrics_port: "127.0.0.1"}, name
    host_ports = [str(p).split(":")[1] for s in services().values() for p in s.get("ports", [])]
    assert len(set(host_ports)) == len(host_ports)
