"""Worker images install only the engines they name, and the chart claims no more."""

from __future__ import annotations

import re
import tomllib

import yaml

from tests.support.crd import ROOT

DOCKERFILE = ROOT / "services" / "tts-worker" / "Dockerfile"


def default_engines() -> set[str]:
    match = re.search(r'^ARG ENGINES="([^"]*)"', DOCKERFILE.read_text(), re.MULTILINE)
    assert match, "the worker Dockerfile declares ARG ENGINES"
    return set(match.group(1).split())


def test_every_engine_the_image_installs_is_a_member_registering_its_family() -> None:
    for engine in default_engines():
        project = tomllib.loads(
            (ROOT / "services" / "tts-engines" / engine / "pyproject.toml").read_text()
        )["project"]
        assert project["name"] == f"duplex-tts-{engine}"
        assert engine in project["entry-points"]["duplex.tts.families"]


def test_the_core_imports_no_engine() -> None:
    core = ROOT / "services" / "tts-worker" / "src" / "duplex_tts"
    for path in core.rglob("*.py"):
        text = path.read_text()
        for engine in ("piper", "kokoro_onnx", "duplex_tts_piper", "duplex_tts_kokoro", "torch"):
            assert not re.search(rf"^\s*(import|from) {engine}\b", text, re.MULTILINE), path
    deps = tomllib.loads((core.parents[1] / "pyproject.toml").read_text())["project"]
    assert not [d for d in deps["dependencies"] if "piper" in d or "kokoro" in d]


def torch_image_engines() -> set[str]:
    """ENGINES of the torch variant, as skaffold's gpu profile and `make images-torch` build it."""
    skaffold = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
    gpu = next(p for p in skaffold["profiles"] if p["name"] == "gpu")
    values = [patch["value"] for patch in gpu["patches"] if isinstance(patch.get("value"), dict)]
    artifact = next(v for v in values if v.get("image", "").endswith("torch"))
    skaffold_engines = set(artifact["docker"]["buildArgs"]["ENGINES"].split())
    makefile = (ROOT / "Makefile").read_text()
    make = re.search(r"^TORCH_IMAGE_ENGINES \?= (.*)$", makefile, re.MULTILINE)
    assert make
    assert set(make.group(1).split()) == skaffold_engines
    return skaffold_engines


COSYVOICE = ROOT / "services" / "tts-engines" / "cosyvoice"


def cosyvoice_image_engines() -> set[str]:
    """The CosyVoice image: its own project, from its own lock, outside the workspace."""
    dockerfile = (COSYVOICE / "Dockerfile").read_text()
    assert "--project services/tts-engines/cosyvoice" in dockerfile
    assert (COSYVOICE / "uv.lock").is_file()
    workspace = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"]["workspace"]
    assert "services/tts-engines/cosyvoice" in workspace["exclude"]
    assert "services/tts-engines/cosyvoice" not in workspace["members"]
    project = tomllib.loads((COSYVOICE / "pyproject.toml").read_text())["project"]
    assert project["name"] == "duplex-tts-cosyvoice"
    label = re.search(r'dev\.duplex\.engines="([^"]*)"', dockerfile)
    assert label
    engines = set(label.group(1).split())
    assert engines == set(project["entry-points"]["duplex.tts.families"])
    return engines


def test_the_chart_claims_only_families_the_worker_image_installs() -> None:
    values = yaml.safe_load((ROOT / "charts" / "duplex" / "values.yaml").read_text())
    installed = {
        "worker": default_engines() | {"mock"},  # mock ships with the core
        "workerTorch": torch_image_engines() | {"mock"},
        "workerCosyvoice": cosyvoice_image_engines() | {"mock"},
    }
    for entry in values["image"]["workerImages"]:
        assert set(entry["families"]) <= installed[entry["key"]], entry
    for engine in torch_image_engines():  # every engine named is a member registering it
        project = tomllib.loads(
            (ROOT / "services" / "tts-engines" / engine / "pyproject.toml").read_text()
        )["project"]
        assert engine in project["entry-points"]["duplex.tts.families"]


def test_the_orchestrator_image_can_run_the_livekit_agent() -> None:
    """The chart's LiveKit agent runs the orchestrator image with --transport livekit."""
    dockerfile = (ROOT / "services" / "orchestrator" / "Dockerfile").read_text()
    installed = re.findall(r"uv sync [^\n]*--package (\S+)", dockerfile)
    assert installed == ["duplex-livekit"]
    project = tomllib.loads((ROOT / "services" / "livekit" / "pyproject.toml").read_text())
    assert "duplex-orchestrator" in project["project"]["dependencies"]
    template = (ROOT / "charts" / "duplex" / "templates" / "livekit-agent.yaml").read_text()
    assert 'include "duplex.asrImage" .' in template  # the orchestrator image, or its CUDA one
    assert "--transport=livekit" in template


def test_the_orchestrators_cuda_image_has_what_ctranslate2_loads_where_it_looks() -> None:
    """Whisper on a GPU: CTranslate2 dlopens CUDA 12's cuBLAS and cuDNN 9, which the
    ASR_CUDA build installs from PyPI into the venv's site-packages; LD_LIBRARY_PATH must
    name those folders for the base image's Python, and `make image-orchestrator-cuda`
    must build the image the chart names for orchestrator.asr.device: cuda."""
    dockerfile = (ROOT / "services" / "orchestrator" / "Dockerfile").read_text()
    assert re.search(r"ASR_CUDA.*= 1.*\n?.*nvidia-cublas-cu12==12\.", dockerfile, re.DOTALL)
    assert "nvidia-cudnn-cu12==9." in dockerfile
    python = re.findall(r"^FROM python:(\d+\.\d+)-slim", dockerfile, re.MULTILINE)
    assert python
    assert set(python) == {python[0]}
    site = f"/app/.venv/lib/python{python[0]}/site-packages/nvidia"
    paths = re.search(r"^ENV LD_LIBRARY_PATH=(\S+)$", dockerfile, re.MULTILINE)
    assert paths
    assert paths.group(1).split(":") == [f"{site}/cublas/lib", f"{site}/cudnn/lib"]
    makefile = (ROOT / "Makefile").read_text()
    target = re.search(r"^image-orchestrator-cuda:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert target
    assert "--build-arg ASR_CUDA=1" in target.group(1)
    values = yaml.safe_load((ROOT / "charts" / "duplex" / "values.yaml").read_text())
    assert f"-t {values['image']['orchestratorCuda']}:$(IMAGE_TAG)" in target.group(1)
