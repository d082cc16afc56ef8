"""Checks on a VoiceModel that the CRD schema cannot make: against the pools that exist."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def estimated_vram_gb(spec: dict[str, Any]) -> float:
    """``spec.resources.estimatedVramGB``, 0 when absent."""
    return float((spec.get("resources") or {}).get("estimatedVramGB") or 0)


def voicemodel_problems(spec: dict[str, Any], pools: Iterable[dict[str, Any]]) -> list[str]:
    """Why the VoiceModel cannot be served (empty: fine); an InvalidSpec condition lists these."""
    problems = []
    family = spec.get("family", "")
    selected = set((spec.get("workerSelector") or {}).get("pools") or [])
    serving = [
        p
        for p in pools
        if family in (p.get("spec") or {}).get("families", [])
        and (not selected or p.get("metadata", {}).get("name") in selected)
    ]
    if not serving:
        where = f" among pools {sorted(selected)}" if selected else ""
        problems.append(
            f"no TTSWorker pool runs family {family!r}{where}; add it to a pool's spec.families"
        )
    if "lora" in (spec.get("tags") or []) and not spec.get("baseModel"):
        problems.append("a LoRA voice (tag 'lora') needs spec.baseModel")
    vram = estimated_vram_gb(spec)
    if (
        vram > 0
        and serving
        and all((p.get("spec") or {}).get("device", "cpu") == "cpu" for p in serving)
    ):
        problems.append(
            f"needs {vram:g} GB of GPU memory but every pool running {family!r} is CPU-only"
        )
    return problems
