"""`duplex up`: one worker and one orchestrator as children, healthy, stopped by Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from duplex_orchestrator import client
from tests.support.worker import ROOT, free_port

pytestmark = pytest.mark.slow


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_duplex_up_serves_and_stops_both_processes_on_ctrl_c() -> None:
    port, worker_port = free_port(), free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "DUPLEX_CACHE": str(ROOT / ".cache")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "duplex_orchestrator.cli",
            "up",
            "--port",
            str(port),
            "--worker-port",
            str(worker_port),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            output.append(line)
            if "duplex is up" in line:
                break
        text = "".join(output)
        assert f"open http://127.0.0.1:{port}" in "".join([*output, proc.stdout.readline()]), text
        assert "DEV MODE" in text or "dev mode" in text
        convo = asyncio.run(client.say(f"ws://127.0.0.1:{port}/ws", "", "Hello from duplex up."))
        assert len(convo.audio) > 48000  # over half a second of speech
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    for _ in range(50):
        if not port_open(port) and not port_open(worker_port):
            break
        time.sleep(0.1)
    assert not port_open(port)
    assert not port_open(worker_port)
