"""`duplex up`: one worker and one orchestrator as children, healthy, stopped by Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from duplex_orchestrator import client
from tests.support.fake_llm import serve_completions, streamed_answer
from tests.support.speech import speech_16k
from tests.support.worker import ROOT, free_port

pytestmark = pytest.mark.slow


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Up:
    proc: subprocess.Popen[str]
    port: int
    worker_port: int
    output: list[str] = field(default_factory=list)

    def children(self) -> list[int]:
        path = f"/proc/{self.proc.pid}/task/{self.proc.pid}/children"
        with open(path, encoding="ascii") as listed:
            return [int(pid) for pid in listed.read().split()]

    def rest_of_output(self) -> str:
        assert self.proc.stdout is not None
        return "".join([*self.output, self.proc.stdout.read()])


@contextlib.contextmanager
def duplex_up(*extra: str, ignore_sigint: bool = False) -> Iterator[Up]:
    """`duplex up` on free ports, once it says it is up; both ports closed after.

    The worker's metrics are off: with the default port, two stacks on one host (these
    tests on two pytest workers) collide, and the second worker exits at start."""
    port, worker_port = free_port(), free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "DUPLEX_CACHE": str(ROOT / ".cache")}
    command = [sys.executable, "-m", "duplex_orchestrator.duplex_command", "up"]
    ports = ["--port", str(port), "--worker-port", str(worker_port), "--worker-metrics-port", "0"]
    proc = subprocess.Popen(
        [*command, *ports, *extra],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # as `cmd &` in a script: bash starts it with SIGINT ignored
        preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
        if ignore_sigint
        else None,
    )
    up = Up(proc, port, worker_port)
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            up.output.append(line)
            if "duplex is up" in line:
                up.output.append(proc.stdout.readline())
                break
        yield up
    finally:
        if proc.poll() is None:
            # a failed test: its children would outlive `duplex up` killed alone
            for child in up.children():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGKILL)
            proc.kill()
    for _ in range(50):
        if not port_open(port) and not port_open(worker_port):
            break
        time.sleep(0.1)
    assert not port_open(port)
    assert not port_open(worker_port)


def test_duplex_up_serves_and_stops_both_processes_on_ctrl_c() -> None:
    with duplex_up() as up:
        text = "".join(up.output)
        assert f"open http://127.0.0.1:{up.port}" in text, text
        assert "DEV MODE" in text or "dev mode" in text
        convo = asyncio.run(client.say(f"ws://127.0.0.1:{up.port}/ws", "", "Hello from duplex up."))
        assert len(convo.audio) > 48000  # over half a second of speech
        up.proc.send_signal(signal.SIGINT)
        assert up.proc.wait(timeout=30) == 0


async def test_duplex_up_answers_with_the_llm_and_the_settings_it_is_given(
    tmp_path: Path,
) -> None:
    """`duplex up` took no LLM and no settings: a local stack could only echo."""
    answer = ["One large pizza", " with mushrooms,", " coming up."]
    seen: list[dict[str, Any]] = []
    runner, llm_url = await serve_completions(streamed_answer(*answer, seen=seen))
    config = tmp_path / "orchestrator.yaml"
    config.write_text("llm_model: tiny\nllm_instructions: Take pizza orders.\nport: 9\n")
    question = speech_16k("Could I order a large pizza with mushrooms, please?")
    try:
        with duplex_up("--llm-url", llm_url, "--config", str(config)) as up:
            said = "".join(up.output)
            assert f"ignored in {config}: port (duplex up's --port)" in said, said
            url = f"ws://127.0.0.1:{up.port}/ws"
            convo = await client.talk(url, "", question, timeout_s=60)
            up.proc.send_signal(signal.SIGINT)
            assert up.proc.wait(timeout=30) == 0
    finally:
        await runner.cleanup()
    assert seen[0]["model"] == "tiny"
    assert seen[0]["messages"][0] == {"role": "system", "content": "Take pizza orders."}
    assert "".join(convo.texts("reply")) == "".join(answer)
    assert len(convo.audio) > 48000


@pytest.mark.parametrize(
    ("how", "sent"),
    [("kill, a process manager", signal.SIGTERM), ("a background job", signal.SIGINT)],
)
def test_duplex_up_stops_cleanly_on_a_signal_sent_to_it_alone(
    how: str, sent: signal.Signals
) -> None:
    """`kill` or `docker stop` send SIGTERM to `duplex up` only: it used to stop its
    children and then exit 1, a failure to `make run` and any supervisor. Started as a
    background job by a non-interactive shell, it ignored SIGINT altogether."""
    with duplex_up(ignore_sigint=how == "a background job") as up:
        up.proc.send_signal(sent)
        assert up.proc.wait(timeout=30) == 0, up.rest_of_output()


def test_a_second_ctrl_c_while_stopping_kills_what_is_left_without_a_traceback() -> None:
    """An impatient second Ctrl-C used to interrupt the wait for the children: a
    traceback, and a child left running on its port."""
    with duplex_up() as up:
        worker_pid = up.children()[0]
        os.kill(worker_pid, signal.SIGSTOP)  # a worker slow to stop: still there at the 2nd
        try:
            up.proc.send_signal(signal.SIGINT)
            time.sleep(1.0)
            assert up.proc.poll() is None  # waiting for the worker
            up.proc.send_signal(signal.SIGINT)
            assert up.proc.wait(timeout=30) == 0
            assert not os.path.exists(f"/proc/{worker_pid}")  # killed and reaped
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker_pid, signal.SIGKILL)  # never left behind, even by a failure
        assert "Traceback" not in up.rest_of_output()
