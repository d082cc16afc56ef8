"""Build throwaway voicepack folders for tests: mock models, and the shipped voices made quiet.

``quiet_voicepacks`` is the repo's ``voicepacks`` with Piper's generator noise
off (``noise_scale`` and ``noise_w_scale`` 0), so a worker speaks a text the
same way on every run. With the voice's own noise, Whisper base heard more
than 10 % of the 59 words of ``test_piper``'s four sentences wrong in 3 of 60
syntheses (15 % at worst; 13.6 % in one CI run), so a word-error bound on a
worker's reply failed by chance; without it, 6.8 % every time. The shipped
voice keeps its noise: ``test_piper`` checks that it is on.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import yaml

VOICEPACKS = Path(__file__).resolve().parents[2] / "voicepacks"


def write_mock_pack(root: Path, model_id: str, **params: Any) -> Path:
    base_model = params.pop("base_model", None)
    meta: dict[str, Any] = {
        "id": model_id,
        "family": "mock",
        "languages": ["en-US"],
        "tags": ["test"],
        "native_sample_rate": int(params.pop("native_sample_rate", 24000)),
        "source": {"path": "."},
        "params": params,
    }
    if base_model:
        meta["base_model"] = base_model
    folder = root / "mock" / model_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metadata.yaml").write_text(yaml.safe_dump(meta))
    return folder


@cache
def quiet_voicepacks() -> Path:
    """A copy of ``voicepacks`` whose Piper voices speak without noise (one per process)."""
    root = Path(tempfile.mkdtemp(prefix="quiet-voicepacks-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    packs = root / "voicepacks"
    shutil.copytree(VOICEPACKS, packs)
    for path in packs.glob("*/*/metadata.yaml"):
        meta = yaml.safe_load(path.read_text())
        if meta["family"] == "piper":
            meta["params"] = {**meta.get("params", {}), "noise_scale": 0.0, "noise_w_scale": 0.0}
            path.write_text(yaml.safe_dump(meta))
    return packs
