"""``make soak``: many clients for a while, with faults, against real processes.

Two workers (mock and Piper) and one orchestrator run as separate processes.
Each client loops over a mix of turns: ``say``, streamed ``text`` deltas,
spoken turns (Piper speech through the microphone path), barge-ins
(``interrupt`` mid-reply), model switches and disconnects. Meanwhile a fault
injector SIGSTOPs a worker for a few seconds, SIGKILLs and restarts one, and
restarts the orchestrator. RSS of every process is sampled every 5 s.

Printed: turns completed, errors by code, stuck turns (no ``tts_end`` or
error within 30 s), failover times after SIGSTOP, the RSS series. Exit 1 on
any stuck turn, a worker session left open once the load stops, or worker
RSS more than ``--rss-growth-mb`` above its level after warm-up.

    python -m tests.bench.soak --clients 4 --minutes 10
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import random
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from duplex_protocol.tts.v1 import tts_pb2 as pb
from tests.support.orchestrator import OrchestratorProcess, start_orchestrator
from tests.support.speech import speech_16k
from tests.support.worker import WorkerProcess, connect, start_worker

TURN_TIMEOUT_S = 30.0
MODELS = ("mock", "piper-en-us-joe-medium")
SAYINGS = (
    "Hello there, how are you today?",
    "The quick brown fox jumps over the lazy dog. Then it naps in the sun.",
    "Numbers like 3.14 and dates like May 5th are read aloud.",
    "A longer reply, with several clauses, commas, and one more sentence after it.",
)


@dataclass
class Tally:
    turns: int = 0
    stuck: int = 0
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    failover_ms: list[float] = field(default_factory=list)
    rss_mb: dict[str, list[float]] = field(default_factory=lambda: collections.defaultdict(list))
    stopped_at: float | None = None


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Stack:
    """The processes under test; faults swap them out."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.workers: list[WorkerProcess] = []
        self.orchestrator: OrchestratorProcess | None = None
        self.ports: list[int] = []
        self.orchestrator_port = 0

    def start(self) -> None:
        for i in range(2):
            self.workers.append(self._worker(i))
        self.ports = [int(w.address.rsplit(":", 1)[1]) for w in self.workers]
        self.restart_orchestrator()

    def _worker(self, i: int, port: int | None = None) -> WorkerProcess:
        args = ["--adapter", "piper,mock", "--default-model", MODELS[i % 2]]
        args += ["--worker-id", f"soak-{i}", "--preload-models", MODELS[(i + 1) % 2]]
        return start_worker(args, self.tmp / f"worker-{i}-{time.time():.0f}.log", port=port)

    def restart_worker(self, i: int) -> None:
        self.workers[i] = self._worker(i, self.ports[i])

    def restart_orchestrator(self) -> None:
        if self.orchestrator is not None:
            self.orchestrator.stop()
        self.orchestrator = start_orchestrator(
            [w.address for w in self.workers],
            self.tmp / f"orchestrator-{time.time():.0f}.log",
            "--default-model",
            "mock",
            port=self.orchestrator_port or None,
        )
        self.orchestrator_port = self.orchestrator.port  # clients reconnect to the same URL

    def processes(self) -> dict[str, int]:
        out = {f"worker-{i}": w.process.pid for i, w in enumerate(self.workers)}
        if self.orchestrator is not None:
            out["orchestrator"] = self.orchestrator.process.pid
        return out

    def stop(self) -> None:
        for w in self.workers:
            with contextlib.suppress(OSError):
                w.process.send_signal(signal.SIGCONT)
            w.stop()
        if self.orchestrator is not None:
            self.orchestrator.stop()


async def one_turn(
    ws: aiohttp.ClientWebSocketResponse, kind: str, speech: Any, tally: Tally
) -> str:
    """Drive one turn; the event that ended it ('tts_end', an error code, or 'stuck')."""
    if kind == "say":
        await ws.send_str(json.dumps({"type": "say", "text": random.choice(SAYINGS)}))
    elif kind == "text":
        for word in random.choice(SAYINGS).split():
            await ws.send_str(json.dumps({"type": "text", "text": word + " ", "final": False}))
        await ws.send_str(json.dumps({"type": "text", "text": "", "final": True}))
    elif kind == "spoken":
        for i in range(0, len(speech), 320):
            await ws.send_bytes(speech[i : i + 320].astype("<i2").tobytes())
            await asyncio.sleep(0.02)
    deadline = time.monotonic() + TURN_TIMEOUT_S
    interrupted = False
    while (left := deadline - time.monotonic()) > 0:
        try:
            message = await ws.receive(timeout=left)
        except TimeoutError:
            break
        if message.type is not aiohttp.WSMsgType.TEXT:
            if message.type is aiohttp.WSMsgType.BINARY:
                if kind == "barge" and not interrupted:
                    interrupted = True
                    await ws.send_str(json.dumps({"type": "interrupt"}))
                continue
            return "closed"
        event = json.loads(message.data)
        if event["type"] == "tts_end":
            return "tts_end"
        hung = "stopped responding" in str(event.get("message", ""))
        if event["type"] == "error" and hung and tally.stopped_at:
            tally.failover_ms.append((time.monotonic() - tally.stopped_at) * 1000)
        if event["type"] == "error" and not event.get("retrying"):
            return str(event["code"])
    return "stuck"


async def client(url: str, tally: Tally, until: float, seed: int, speech: Any) -> None:
    rng = random.Random(seed)
    while time.monotonic() < until:
        try:
            async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
                await ws.send_str(json.dumps({"type": "start", "sample_rate": 16000}))
                await ws.receive(timeout=10)
                for _turn in range(rng.randint(3, 12)):
                    if time.monotonic() >= until:
                        return
                    kind = rng.choice(["say", "say", "text", "spoken", "barge", "model"])
                    if kind == "model":
                        model = rng.choice(MODELS)
                        await ws.send_str(json.dumps({"type": "model", "model": model}))
                        kind = "say"
                    if kind == "barge":
                        await ws.send_str(json.dumps({"type": "say", "text": SAYINGS[3] * 3}))
                    try:  # a hard bound besides receive()'s own timeout
                        outcome = await asyncio.wait_for(
                            one_turn(ws, kind, speech, tally), TURN_TIMEOUT_S + 15
                        )
                    except TimeoutError:
                        outcome = "stuck"
                    if outcome == "stuck":
                        tally.stuck += 1
                    elif outcome == "tts_end":
                        tally.turns += 1
                    else:
                        tally.errors[outcome] += 1
                        if outcome == "closed":
                            break
                # ...and disconnect without a word (a closed tab).
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            tally.errors[type(exc).__name__] += 1
            await asyncio.sleep(1)


async def faults(stack: Stack, tally: Tally, until: float, every_s: float) -> None:
    cycle = 0
    while time.monotonic() + every_s < until:
        await asyncio.sleep(every_s)
        kind = ("stop", "kill", "orchestrator")[cycle % 3]
        cycle += 1
        print(f"[{time.strftime('%X')}] fault: {kind}", flush=True)
        if kind == "stop":
            victim = stack.workers[0].process
            victim.send_signal(signal.SIGSTOP)
            tally.stopped_at = time.monotonic()
            await asyncio.sleep(5)
            victim.send_signal(signal.SIGCONT)
            tally.stopped_at = None
        elif kind == "kill":
            stack.workers[1].process.send_signal(signal.SIGKILL)
            stack.workers[1].process.wait()
            await asyncio.sleep(3)
            await asyncio.to_thread(stack.restart_worker, 1)
        else:
            await asyncio.to_thread(stack.restart_orchestrator)


async def sample_rss(stack: Stack, tally: Tally, until: float) -> None:
    while time.monotonic() < until:
        for name, pid in stack.processes().items():
            with contextlib.suppress(OSError):  # one series per process (restarts start anew)
                tally.rss_mb[f"{name} pid {pid}"].append(round(rss_mb(pid), 1))
        await asyncio.sleep(5)


async def open_sessions(stack: Stack) -> int:
    total = 0
    for worker in stack.workers:
        async with connect(worker.address) as stub:
            caps = await stub.GetCapabilities(pb.GetCapabilitiesRequest(), timeout=5)
            total += caps.active_sessions
    return total


async def soak(args: argparse.Namespace) -> int:
    # A microphone stays open: the silence after the words is what ends the turn
    # (the orchestrator waits 500 ms of it). Whole 20 ms frames only.
    speech = speech_16k("What is the weather like today?", tail_s=1.0)
    speech = np.concatenate([speech, np.zeros(-len(speech) % 320, np.int16)])
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(Path(tmp))
        stack.start()
        tally = Tally()
        try:
            started = time.monotonic()
            until = started + args.minutes * 60
            assert stack.orchestrator is not None
            url = stack.orchestrator.ws_url
            tasks = [
                asyncio.create_task(client(url, tally, until, seed, speech))
                for seed in range(args.clients)
            ]
            tasks.append(asyncio.create_task(sample_rss(stack, tally, until + 30)))
            if args.faults:
                tasks.append(asyncio.create_task(faults(stack, tally, until, args.fault_every_s)))
            await asyncio.gather(*tasks)
            leaked = await open_sessions(stack)
        finally:
            stack.stop()
    report(tally, leaked, args)
    growth = {  # from the third sample (after warm-up) to the last, per worker process
        name: round(series[-1] - series[2], 1)
        for name, series in tally.rss_mb.items()
        if name.startswith("worker") and len(series) >= 3
    }
    failed = tally.stuck > 0 or leaked > 0 or any(g > args.rss_growth_mb for g in growth.values())
    print(f"RSS growth after warm-up (MB): {growth}")
    print("FAIL" if failed else "OK")
    return 1 if failed else 0


def report(tally: Tally, leaked: int, args: argparse.Namespace) -> None:
    print(f"clients {args.clients}, {args.minutes} min, faults {'on' if args.faults else 'off'}")
    print(f"turns completed: {tally.turns}; stuck: {tally.stuck}; worker sessions left: {leaked}")
    print(f"errors: {dict(tally.errors)}")
    if tally.failover_ms:
        ms = sorted(tally.failover_ms)
        print(
            f"failover after SIGSTOP (ms): n {len(ms)}, median {statistics.median(ms):.0f}, "
            f"max {ms[-1]:.0f}"
        )
    for name, series in tally.rss_mb.items():
        if series:
            print(
                f"RSS {name} (MB): first {series[0]}, median {statistics.median(series)}, "
                f"max {max(series)}, last {series[-1]} ({len(series)} samples)"
            )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--faults", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--fault-every-s", type=float, default=60.0)
    p.add_argument("--rss-growth-mb", type=float, default=150.0)
    sys.exit(asyncio.run(soak(p.parse_args())))


if __name__ == "__main__":
    main()
