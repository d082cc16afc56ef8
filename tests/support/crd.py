"""Validate custom resources against our CRDs as an API server would (schema, defaults, CEL).

The openAPIV3Schema becomes a JSON Schema with unknown fields rejected (what
``kubectl apply --validate=strict`` does), defaults are applied, then every
``x-kubernetes-validations`` rule is evaluated with cel-python.
"""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import yaml
from celpy.adapter import json_to_cel

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "crds"


@cache
def crd_schemas() -> dict[str, dict[str, Any]]:
    """kind → the v1alpha1 openAPIV3Schema."""
    schemas = {}
    for path in sorted(CRDS.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1")
        schemas[crd["spec"]["names"]["kind"]] = version["schema"]["openAPIV3Schema"]
    return schemas


def _json_schema(node: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties":
            out[key] = {name: _json_schema(sub) for name, sub in value.items()}
        elif key == "items" or (key == "additionalProperties" and isinstance(value, dict)):
            out[key] = _json_schema(value)
        elif key == "x-kubernetes-int-or-string":
            out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        elif not key.startswith("x-kubernetes-") and key not in ("default", "description"):
            out[key] = value
    if "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        out.setdefault("additionalProperties", False)
    return out


def _defaults(schema: dict[str, Any], obj: Any) -> Any:
    if isinstance(obj, dict):
        for name, sub in schema.get("properties", {}).items():
            if name not in obj and "default" in sub:
                obj[name] = copy.deepcopy(sub["default"])
            if name in obj:
                obj[name] = _defaults(sub, obj[name])
    elif isinstance(obj, list) and "items" in schema:
        return [_defaults(schema["items"], item) for item in obj]
    return obj


def _cel_errors(schema: dict[str, Any], obj: Any, path: str) -> list[str]:
    errors = []
    env = celpy.Environment()
    for rule in schema.get("x-kubernetes-validations", []):
        program = env.program(env.compile(rule["rule"]))
        if not bool(program.evaluate({"self": json_to_cel(obj)})):
            errors.append(f"{path}: {rule.get('message', rule['rule'])}")
    if isinstance(obj, dict):
        for name, sub in schema.get("properties", {}).items():
            if name in obj:
                errors += _cel_errors(sub, obj[name], f"{path}.{name}")
    elif isinstance(obj, list) and "items" in schema:
        for i, item in enumerate(obj):
            errors += _cel_errors(schema["items"], item, f"{path}[{i}]")
    return errors


def validate(resource: dict[str, Any]) -> list[str]:
    """Every reason the API server would reject ``resource`` (empty when valid)."""
    schema = crd_schemas().get(resource.get("kind", ""))
    if schema is None:
        return [f"no CRD for kind {resource.get('kind')!r}"]
    if resource.get("apiVersion") != "duplex.dev/v1alpha1":
        return [f"apiVersion must be duplex.dev/v1alpha1, got {resource.get('apiVersion')!r}"]
    validator = jsonschema.Draft7Validator(_json_schema(schema))
    errors = [
        f"{'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
        for e in validator.iter_errors(resource)
    ]
    if errors:
        return errors
    return _cel_errors(schema, _defaults(schema, copy.deepcopy(resource)), "")
