"""Build throwaway voicepack folders of mock models for tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


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
