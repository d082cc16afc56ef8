"""``duplex-orchestrator --transport livekit`` as a process, with no LiveKit server.

The agent server starts, serves its health endpoint and names its agent, and
stops on SIGTERM. Its LiveKit URL is a closed loopback port: no packet leaves
this machine, and no room is ever joined (that needs a real LiveKit server).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.support.worker import ROOT, ChildProcess, free_port


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_the_livekit_agent_server_starts_names_its_agent_and_stops(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "DUPLEX_CACHE": str(ROOT / ".cache"),
        "LIVEKIT_URL": f"ws://127.0.0.1:{free_port()}",  # nothing listens there
        "LIVEKIT_API_KEY": "test-key",
        "LIVEKIT_API_SECRET": "test-secret-that-is-long-enough",
    }
    log_path = tmp_path / "agent.log"
    cmd = [sys.executable, "-m", "duplex_orchestrator", "--transport", "livekit"]
    cmd += ["--livekit-port", str(port), "--livekit-agent-name", "duplex-test"]
    cmd += ["--worker", f"127.0.0.1:{free_port()}"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    agent = ChildProcess(process, log_path)
    try:
        deadline, answer = time.monotonic() + 60, (0, "")
        while time.monotonic() < deadline and process.poll() is None:
            try:
                answer = _get(f"http://127.0.0.1:{port}/worker")
                break
            except OSError:
                time.sleep(0.2)
        assert answer[0] == 200, agent.log()
        assert json.loads(answer[1])["agent_name"] == "duplex-test"
        assert "test-secret" not in agent.log()
    finally:
        code = agent.stop()
    assert code in (0, -15), agent.log()
