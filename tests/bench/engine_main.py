"""The command line of the in-process engine benches (XTTS, CosyVoice): a tiny
random-weight model by default, real weights with ``--packs DIR --model ID``."""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from tests.bench.bench_swap import report
from tests.bench.bench_worker import publish
from tests.support.worker import ROOT

Run = Callable[[Path, str, str, int], Coroutine[Any, Any, dict[str, Any]]]


def engine_bench_main(
    doc: str | None, family: str, write_tiny_pack: Callable[[Path, str], object], run: Run
) -> None:
    """Parse the flags, build the tiny ``<family>-tiny`` pack unless ``--packs``, run, publish."""
    tiny = f"{family}-tiny"
    parser = argparse.ArgumentParser(description=doc.splitlines()[0] if doc else None)
    parser.add_argument("--packs", type=Path, help="voicepacks root (default: the tiny model)")
    parser.add_argument("--model", default=tiny)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results" / f"{family}.json")
    args = parser.parse_args()
    packs = args.packs
    if packs is None:
        packs = Path(tempfile.mkdtemp(prefix=f"duplex-bench-{family}-"))
        write_tiny_pack(packs, tiny)
    results = asyncio.run(run(packs, args.model, args.device, args.runs))
    publish(results, args.out, report)
