"""Fixtures for the CosyVoice tests, which run in the CosyVoice environment
(``make test-cosyvoice``; its upstream pins cannot share the workspace's)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from duplex_tts.catalog import load_catalog
from duplex_tts.scheduler import SynthesisScheduler
from duplex_tts_cosyvoice import CosyVoiceFamily, CosyVoiceModel
from tests.support.tiny_cosyvoice import write_cosyvoice_pack


@pytest.fixture(scope="session")
def packs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("voicepacks")
    write_cosyvoice_pack(root, "cosyvoice-tiny")
    return root


@pytest.fixture(scope="session")
def model(packs: Path) -> CosyVoiceModel:
    loaded = CosyVoiceFamily().load(load_catalog(packs).models["cosyvoice-tiny"], "cpu", None)
    assert isinstance(loaded, CosyVoiceModel)
    return loaded


@pytest.fixture
def device() -> Iterator[SynthesisScheduler]:
    """A device thread like a worker's: one thread, earliest deadline first."""
    scheduler = SynthesisScheduler(1, name="device-cpu")
    yield scheduler
    scheduler.shutdown()
