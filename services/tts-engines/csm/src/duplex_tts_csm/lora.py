"""LoRA voices on one resident CSM base (peft).

``LoraHost`` owns the adapters of one loaded base: adding one injects a named
LoRA into the resident weights (never a second copy of the base), deleting it
removes it, and once the last goes the peft wrapper is unloaded so the base
runs exactly as before. Generation goes through ``generator`` with one
adapter name per batch row (``BASE`` for the plain base): peft's mixed-batch
LoRA lets rows of one batch speak with different voices.

The codec (``codec_model``, Mimi) is never adapted: an adapter's target
modules are restricted away from it whatever its config says (names such as
``q_proj`` match the codec's attention too), and codec weights in a file are
ignored with a warning. Every method here changes model state: call them only
on the model's device thread.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, PeftModel, load_peft_weights, set_peft_model_state_dict

from duplex_tts.adapters import AdapterError

log = logging.getLogger(__name__)

BASE = "__base__"
"""The adapter name peft gives the plain base in a mixed batch."""
CODEC_MODULES = r"codec_model(\..*)?"
"""Module names no adapter may touch (a regex matched against full names)."""


def adapter_name(model_id: str) -> str:
    """peft's name for a voice: model ids may hold '.', module keys may not (ids have no '_')."""
    return model_id.replace(".", "_")


class LoraHost:
    def __init__(self, model: Any) -> None:
        self.model = model
        """The transformers model; LoRA layers are injected into it in place."""
        self._peft: PeftModel | None = None

    @property
    def adapters(self) -> list[str]:
        return list(self._peft.peft_config) if self._peft is not None else []

    @property
    def generator(self) -> Any:
        """What to call ``generate`` on: the peft wrapper while adapters exist."""
        return self._peft if self._peft is not None else self.model

    def generate_kwargs(self, names: list[str]) -> dict[str, Any]:
        """``adapter_names`` for a batch, one per row; nothing while no adapter exists."""
        return {"adapter_names": names} if self._peft is not None else {}

    def add(self, name: str, folder: Path) -> int:
        """Load the adapter saved in ``folder`` as ``name``; returns the bytes it holds."""
        if name in self.adapters:
            raise AdapterError(f"LoRA adapter {name!r} is already loaded")
        config = _config(folder)
        try:
            weights = load_peft_weights(str(folder), device=str(_device(self.model)))
        except (OSError, ValueError) as exc:
            raise AdapterError(f"could not read the LoRA weights in {folder}: {exc}") from exc
        first = self._peft is None
        try:
            if self._peft is None:
                self._peft = PeftModel(self.model, config, adapter_name=name)
            else:
                self._peft.add_adapter(name, config)
            result = set_peft_model_state_dict(self._peft, weights, adapter_name=name)
        except (ValueError, RuntimeError, KeyError) as exc:
            self._drop(name, first)
            raise AdapterError(f"LoRA adapter in {folder} does not fit this base: {exc}") from exc
        unexpected: list[str] = list(getattr(result, "unexpected_keys", []))
        skipped = [k for k in unexpected if "codec_model" in k]
        if skipped:
            log.warning(
                "codec weights in a LoRA adapter ignored",
                extra={"event": "lora_codec_ignored", "adapter": name, "tensors": len(skipped)},
            )
        others = [k for k in unexpected if "codec_model" not in k]
        if others:
            self._drop(name, first)
            raise AdapterError(
                f"LoRA adapter in {folder} has weights this base lacks, e.g. {others[0]}"
            )
        self._peft.eval()
        return self.adapter_bytes(name)

    def remove(self, name: str) -> None:
        """Delete an adapter; the base is restored once no adapter is left."""
        if name in self.adapters:
            self._drop(name, False)

    def adapter_bytes(self, name: str) -> int:
        key = f".{name}."
        return sum(
            p.numel() * p.element_size()
            for n, p in (self._peft.named_parameters() if self._peft else [])
            if key in n
        )

    def _drop(self, name: str, first: bool) -> None:
        assert self._peft is not None
        if len(self.adapters) <= 1 or first:
            # unload() takes every LoRA layer out again: the base's own modules remain.
            self.model = self._peft.unload()
            self._peft = None
        else:
            self._peft.delete_adapter(name)


def _config(folder: Path) -> LoraConfig:
    try:
        config = LoraConfig.from_pretrained(str(folder))
    except (OSError, ValueError, TypeError) as exc:
        raise AdapterError(f"no LoRA adapter_config.json in {folder}: {exc}") from exc
    if not isinstance(config, LoraConfig):
        raise AdapterError(f"{folder} holds a {type(config).__name__}, not a LoRA adapter")
    config.inference_mode = True
    config.exclude_modules = _excluding_codec(config.exclude_modules)
    return config


def _excluding_codec(exclude: str | set[str] | list[str] | None) -> str:
    """One regex: the adapter's own exclusions and the codec."""
    if not exclude:
        return CODEC_MODULES
    if isinstance(exclude, str):
        return f"(?:{exclude})|{CODEC_MODULES}"
    # A list excludes by suffix: a name ending in '.<item>' or equal to it.
    suffixes = "|".join(f"(?:.*\\.)?{re.escape(item)}" for item in exclude)
    return f"(?:{suffixes})|{CODEC_MODULES}"


def _device(model: Any) -> torch.device:
    device: torch.device = next(model.parameters()).device
    return device
