"""`duplex say` against a real orchestrator: HTTPS/WSS serving and the exit status.

The orchestrator serves TLS with a certificate from a test CA (trustme); the
CLI trusts it through ``SSL_CERT_FILE`` like any Python client would, and a
reply that does not finish within ``--timeout`` exits 1 with partial audio.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import wave
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
import trustme

from tests.support.orchestrator import OrchestratorProcess, start_orchestrator
from tests.support.worker import ROOT, WorkerProcess, start_worker

LONG = " ".join(f"Sentence number {i} of a long reply." for i in range(40))


def duplex(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "duplex_orchestrator.duplex_command", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[WorkerProcess]:
    process = start_worker(["--adapter", "mock", "--default-model", "mock"], tmp_path / "w.log")
    yield process
    process.stop()


@pytest.fixture
def https(tmp_path: Path, worker: WorkerProcess) -> Iterator[tuple[OrchestratorProcess, Path]]:
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1")
    cert, key, ca_file = tmp_path / "o.crt", tmp_path / "o.key", tmp_path / "ca.crt"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_file))
    orch = start_orchestrator(
        [worker.address],
        tmp_path / "o.log",
        "--default-model", "mock",
        "--tls-cert", str(cert), "--tls-key", str(key),
    )  # fmt: skip
    yield orch, ca_file
    orch.stop()


async def test_the_orchestrator_serves_https_and_wss(
    https: tuple[OrchestratorProcess, Path], tmp_path: Path
) -> None:
    orch, ca_file = https
    assert orch.url.startswith("https://")
    trusting = ssl.create_default_context(cafile=str(ca_file))
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{orch.url}/healthz", ssl=trusting) as health,
    ):
        assert health.status == 200
    out = tmp_path / "reply.wav"
    spoken = duplex(
        "say", "Over TLS.", "--url", orch.ws_url, "--out", str(out),
        env={"SSL_CERT_FILE": str(ca_file)},
    )  # fmt: skip
    assert spoken.returncode == 0, spoken.stderr
    with wave.open(str(out)) as wav:
        assert wav.getnframes() > 0
    # A client that does not trust the certificate gets a clear failure, not a hang.
    refused = duplex("say", "Hello.", "--url", orch.ws_url, "--out", str(tmp_path / "no.wav"))
    assert refused.returncode == 1
    assert "certificate" in refused.stderr.lower()
    assert not (tmp_path / "no.wav").exists()


@pytest.mark.parametrize("problem", ["missing", "not PEM", "another's key"])
def test_a_certificate_that_cannot_be_loaded_is_one_line(tmp_path: Path, problem: str) -> None:
    """It used to be a traceback from ssl."""
    ca = trustme.CA()
    cert, key = tmp_path / "o.crt", tmp_path / "o.key"
    ca.issue_cert("127.0.0.1").cert_chain_pems[0].write_to_path(str(cert))
    if problem == "not PEM":
        key.write_text("not a key")
    elif problem == "another's key":
        ca.issue_cert("127.0.0.1").private_key_pem.write_to_path(str(key))
    run = subprocess.run(
        [sys.executable, "-m", "duplex_orchestrator", "--dev", "--port", "18443",  # never bound
         "--tls-cert", str(cert), "--tls-key", str(key)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 2, run.stderr[-2000:]
    lines = [out for out in run.stderr.splitlines() if "tls_cert" in out]
    reason = {
        "missing": "No such file or directory",
        "not PEM": "not a PEM certificate and its own key (",
        "another's key": "not a PEM certificate and its own key (",
    }[problem]
    assert len(lines) == 1
    assert lines[0].startswith(
        f"duplex-orchestrator: invalid configuration: tls_cert, tls_key: cannot load {cert} "
        f"with the key {key}: {reason}"
    )
    assert "Traceback" not in run.stderr


def test_say_exits_1_when_the_reply_does_not_finish_in_time(
    worker: WorkerProcess, tmp_path: Path
) -> None:
    orch = start_orchestrator([worker.address], tmp_path / "o.log", "--default-model", "mock")
    try:
        out = tmp_path / "partial.wav"
        cut = duplex("say", LONG, "--url", orch.ws_url, "--out", str(out), "--timeout", "1.5")
        assert cut.returncode == 1
        assert "did not finish" in cut.stderr
        with wave.open(str(out)) as wav:  # what arrived is kept, and marked partial
            partial_s = wav.getnframes() / wav.getframerate()
        assert 0 < partial_s < 3  # a 40-sentence reply is over a minute long
        whole = duplex("say", "Short.", "--url", orch.ws_url, "--out", str(out))
        assert whole.returncode == 0, whole.stderr
        # Past one message's 4,000 characters, the text goes as a stream: it used to be
        # refused as too_large.
        longer = duplex(
            "say", LONG * 4, "--url", orch.ws_url, "--out", str(out), "--timeout", "1.5"
        )
        assert len(LONG * 4) > 4000
        assert longer.returncode == 1
        assert "did not finish" in longer.stderr
        assert "too_large" not in longer.stderr
        assert "error" not in longer.stdout + longer.stderr
        # A refused text is said once, as the server says it.
        blank = duplex("say", "  ", "--url", orch.ws_url, "--out", str(out))
        assert blank.returncode == 1
        assert blank.stderr == "error:  bad_message: 'text' is empty: there is nothing to say\n"
        # A typed turn is answered by the LLM (the echo bridge here) and spoken.
        asked = duplex("ask", "What is on the menu?", "--url", orch.ws_url, "--out", str(out))
        assert asked.returncode == 0, asked.stderr
        assert "reply:  What is on the menu?" in asked.stdout
    finally:
        orch.stop()


def probe(address: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "duplex_tts.probe", address, "--timeout-s", "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_health_probe_passes_a_serving_worker_and_fails_a_missing_one(
    worker: WorkerProcess,
) -> None:
    # compose.yaml's worker health check: exit 0 once SERVING, 1 when nothing answers.
    assert probe(worker.address).returncode == 0
    worker.stop()
    gone = probe(worker.address)
    assert gone.returncode == 1
    assert "is not serving" in gone.stderr
