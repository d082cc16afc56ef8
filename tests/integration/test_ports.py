"""A port already taken: each service says which, for what, in one line, and exits 1.

They used to end with a traceback: the orchestrator's from asyncio, the
worker's from grpcio (whose ``RuntimeError`` the worker's check for 0 missed)
and prometheus-client, the operator's from aiohttp and prometheus-client.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.support.worker import ROOT, free_port

WORKER = [sys.executable, "-m", "duplex_tts", "--adapter", "mock", "--default-model", "mock"]
OPERATOR = [sys.executable, "-m", "duplex_operator", "--standalone", "--all-namespaces"]


@pytest.fixture
def taken() -> Iterator[int]:
    """A port something else listens on (every address: it blocks 127.0.0.1 too)."""
    with socket.socket() as holder:
        holder.bind(("0.0.0.0", 0))
        holder.listen()
        yield holder.getsockname()[1]


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (
            [*WORKER, "--host", "127.0.0.1", "--port", "{taken}", "--metrics-port", "0"],
            "duplex-tts-worker: cannot start: cannot listen on 127.0.0.1:{taken} for the "
            "worker's gRPC: the port is in use",
        ),
        (
            [*WORKER, "--host", "127.0.0.1", "--port", "{free}", "--metrics-port", "{taken}"],
            "duplex-tts-worker: cannot start: cannot listen on 0.0.0.0:{taken} for Prometheus "
            "metrics: address already in use",
        ),
        (
            [*WORKER, "--host", "127.0.0.1", "--port", "{free}", "--metrics-port", "0",
             "--health-port", "{taken}"],
            "cannot listen on 127.0.0.1:{taken} for gRPC health probes",
        ),
        (
            [sys.executable, "-m", "duplex_orchestrator", "--dev", "--port", "{taken}",
             "--worker", "127.0.0.1:{free}"],
            "duplex-orchestrator: cannot listen on 127.0.0.1:{taken} for HTTP and WebSocket: "
            "address already in use (see --host and --port)",
        ),
        (
            [*OPERATOR, "--metrics-port", "{taken}", "--health-port", "0"],
            "duplex-operator: cannot listen on 0.0.0.0:{taken} for Prometheus metrics: "
            "address already in use",
        ),
        (
            [*OPERATOR, "--metrics-port", "0", "--health-port", "{taken}"],
            "duplex-operator: cannot listen on 0.0.0.0:{taken} for health probes: "
            "address already in use",
        ),
    ],
    ids=["worker grpc", "worker metrics", "worker health", "orchestrator", "operator metrics",
         "operator health"],
)  # fmt: skip
def test_a_port_in_use_is_one_line_naming_it(taken: int, argv: list[str], says: str) -> None:
    ports = {"taken": taken, "free": free_port()}
    run = subprocess.run(
        [arg.format(**ports) for arg in argv],
        cwd=ROOT,
        # an emulator's address that is never reached: the port is refused before
        env={**os.environ, "DUPLEX_KUBE_URL": f"http://127.0.0.1:{ports['free']}"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1, run.stderr[-2000:]
    assert says.format(**ports) in run.stderr
    assert "Traceback" not in run.stderr
    assert "never awaited" not in run.stderr
