"""The installed libraries carry their bytecode, as the images do.

Where PYTHONDONTWRITEBYTECODE is set (as on these machines) an import never
caches a .pyc, so without bytecode written at install every process start
compiled its libraries again: a mock worker took 5.5 s to serve instead of 2.2.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import pytest


@pytest.mark.parametrize("module", ["grpc", "numpy", "scipy.signal", "kubernetes_asyncio"])
def test_a_library_the_services_import_has_its_bytecode_installed(module: str) -> None:
    source = importlib.import_module(module).__file__
    assert source is not None
    cached = importlib.util.cache_from_source(source)
    assert Path(cached).is_file(), f"{cached} missing: install with UV_COMPILE_BYTECODE=1"
