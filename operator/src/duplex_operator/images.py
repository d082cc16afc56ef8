"""The worker image catalog: which image serves a pool's engine families (pure).

The chart passes the catalog as ``DUPLEX_WORKER_IMAGES``; a pool without
``spec.image`` gets the first image whose engines serve all its families,
a CUDA one first for ``device: cuda`` pools.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["NoWorkerImage", "WorkerImage", "pick_image", "worker_images"]


class NoWorkerImage(ValueError):
    """No image is given for a pool and none in the catalog serves its families."""


@dataclass(frozen=True)
class WorkerImage:
    """One worker image and the engine families installed in it."""

    image: str
    families: frozenset[str]
    cuda: bool = False
    """Carries CUDA runtimes (the torch variant): preferred by ``device: cuda`` pools."""


def worker_images(text: str) -> list[WorkerImage]:
    """The catalog the chart passes as ``DUPLEX_WORKER_IMAGES``: a JSON list of
    ``{"image": ..., "families": [...], "cuda": bool}``, in order of preference."""
    if not text.strip():
        return []
    return [
        WorkerImage(str(e["image"]), frozenset(e["families"]), bool(e.get("cuda", False)))
        for e in json.loads(text)
    ]


def pick_image(families: Sequence[str], device: str, catalog: Sequence[WorkerImage]) -> str:
    """The first image whose engines serve every family (a CUDA one first for cuda pools)."""
    serving = [w for w in catalog if set(families) <= w.families]
    if device == "cuda":
        serving.sort(key=lambda w: not w.cuda)  # stable: catalog order otherwise
    if not serving:
        known = "; ".join(f"{w.image}: {', '.join(sorted(w.families))}" for w in catalog)
        raise NoWorkerImage(
            f"no worker image serves families {sorted(families)} (known: {known or 'none'}); "
            "set spec.image or add an image to the operator's workerImages"
        )
    return serving[0].image
