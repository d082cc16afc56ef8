"""Render the Helm chart with the real Helm SDK (helm-python-sdk) and pick objects out."""

from __future__ import annotations

from typing import Any

import yaml
from helm_python import chart as helm

from tests.support.crd import ROOT

CHART = ROOT / "charts" / "duplex"
SECRET = {"orchestrator": {"apiKey": {"existingSecret": "duplex-api-key"}}}


def render(values: dict[str, Any]) -> list[dict[str, Any]]:
    out = helm.Chart.load(str(CHART)).render(values, name="duplex", namespace="voice")
    return [doc for text in out.values() for doc in yaml.safe_load_all(text) if doc]


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)
