"""Operator reconcile time at scale: ``make bench`` (or ``python -m tests.bench.bench_operator``).

kmock's emulator in its own process stands in for the API server; two real
mock-family ``duplex-tts-worker`` processes write their Leases as pods would;
a real ``duplex-operator`` process reconciles. With one CPU pool in place,
500 VoiceModels (``minResident: 1``) are created at once, and the bench
reports when each is first seen ``Ready`` (placed, loaded over gRPC, seen in
the holder's Lease, written to status), the total, and the operator's CPU
use once everything is Ready. Writes ``bench-results/operator.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from duplex_protocol.kube import KubeClient, KubeConfig
from tests.bench.bench_worker import publish, summary
from tests.support.emulator import (
    MODELS,
    POOLS,
    as_served,
    cpu_pool,
    start_emulator,
    start_operator,
    start_pod_worker,
)
from tests.support.voicepacks import write_mock_pack
from tests.support.worker import ROOT, ChildProcess


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def voicemodel(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "duplex.dev/v1alpha1",
        "kind": "VoiceModel",
        "metadata": {"name": name},
        "spec": {
            "family": "mock",
            "source": {"voicepack": f"mock/{name}"},
            "languages": ["en-US"],
            "residency": {"minResident": 1},
        },
    }


async def measure(
    url: str, operator: ChildProcess, emulator: ChildProcess, count: int, timeout_s: float
) -> dict[str, Any]:
    api = KubeClient(KubeConfig(url), timeout_s=60)
    try:
        await api.create(POOLS, as_served(cpu_pool(replicas=2)))
        names = [f"voice-{i:03d}" for i in range(count)]
        pids = {"operator": operator.process.pid, "emulator": emulator.process.pid}
        cpu = {name: cpu_seconds(pid) for name, pid in pids.items()}
        created: dict[str, float] = {}
        started = time.monotonic()
        gate = asyncio.Semaphore(16)

        async def create(name: str) -> None:
            async with gate:
                await api.create(MODELS, as_served(voicemodel(name)))
                created[name] = time.monotonic()

        await asyncio.gather(*(create(name) for name in names))
        all_created = time.monotonic() - started
        ready: dict[str, float] = {}
        while len(ready) < count and time.monotonic() - started < timeout_s:
            listing = await api.get(MODELS)
            moment = time.monotonic()
            for item in listing.get("items", []):
                name = item["metadata"]["name"]
                if name not in ready and (item.get("status") or {}).get("phase") == "Ready":
                    ready[name] = moment
            await asyncio.sleep(1.0)
        total = time.monotonic() - started
        busy = {name: (cpu_seconds(pid) - cpu[name]) / total for name, pid in pids.items()}
        before = cpu_seconds(operator.process.pid)
        await asyncio.sleep(10)
        idle_cpu = (cpu_seconds(operator.process.pid) - before) / 10
        return {
            "voicemodels": count,
            "created_in_s": all_created,
            "all_ready_s": total if len(ready) == count else None,
            "ready": len(ready),
            "create_to_ready_s": summary([ready[n] - created[n] for n in ready]) if ready else {},
            "operator_cpu_cores_until_ready": busy["operator"],
            "emulator_cpu_cores_until_ready": busy["emulator"],
            "steady_operator_cpu_cores": idle_cpu,
        }
    finally:
        await api.close()


def render(results: dict[str, Any]) -> str:
    per = results["create_to_ready_s"]
    lines = [
        f"operator: {results['voicemodels']} VoiceModels (minResident 1, two mock workers)",
        f"  created in            {results['created_in_s']:.2f} s",
        f"  all Ready after       {results['all_ready_s'] or float('nan'):.2f} s "
        f"({results['ready']}/{results['voicemodels']} Ready)",
    ]
    if per:
        lines.append(f"  create -> Ready       p50 {per['p50']:.2f} s   p95 {per['p95']:.2f} s")
    lines.append(
        f"  CPU until all Ready   operator {results['operator_cpu_cores_until_ready']:.2f} cores, "
        f"emulator {results['emulator_cpu_cores_until_ready']:.2f} cores"
    )
    lines.append(
        f"  steady operator CPU   {results['steady_operator_cpu_cores']:.2f} cores "
        f"(everything Ready, reconciling every {results['reconcile_every_s']} s)"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--models", type=int, default=500)
    parser.add_argument("--reconcile-every-s", type=float, default=3.0)
    parser.add_argument("--timeout-s", type=float, default=300.0)
    parser.add_argument("--logs", type=Path, help="keep the processes' logs in this folder")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results" / "operator.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="duplex-bench-operator-") as tmp:
        work = args.logs or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        packs = work / "packs"
        write_mock_pack(packs, "mock")
        for i in range(args.models):
            write_mock_pack(packs, f"voice-{i:03d}")
        emulator, url = start_emulator(work / "emulator.log")
        started: list[ChildProcess] = [emulator]
        try:
            for pod in ("cpu-tts-0", "cpu-tts-1"):
                log = work / f"{pod}.log"
                started.append(start_pod_worker(url, pod, packs, log, "--resident-cap", "0"))
            operator = start_operator(
                url,
                "bench",
                work / "operator.log",
                "--reconcile-every-s",
                str(args.reconcile_every_s),
            )
            started.append(operator)
            results = asyncio.run(measure(url, operator, emulator, args.models, args.timeout_s))
            results["reconcile_every_s"] = args.reconcile_every_s
        finally:
            for process in reversed(started):
                process.stop()
    publish(results, args.out, render)


if __name__ == "__main__":
    main()
