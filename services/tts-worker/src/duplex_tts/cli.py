"""``duplex-tts-worker``: flags over YAML over environment over defaults; exit 2 on bad config."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from duplex_protocol.logs import setup_logging
from duplex_tts.config import ConfigError, WorkerConfig, build_config


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="duplex-tts-worker",
        description="duplex TTS worker: streaming gRPC text-to-speech (duplex.tts.v1.TTS).",
        epilog="Settings may also come from --config FILE.yaml and DUPLEX_TTS_<FIELD> variables; "
        "flags win over both.",
    )
    add = p.add_argument
    add("--config", type=Path, help="YAML file of settings (same names as the flags, with _)")
    add("--adapter", dest="adapters", help="families to serve, comma-separated (default: piper)")
    add("--host", help="address to listen on (default 0.0.0.0)")
    add("--port", type=int, help="gRPC port (default 7001)")
    add(
        "--health-port",
        type=int,
        help="plaintext gRPC health-only port for probes (default 0: off)",
    )
    add("--metrics-port", type=int, help="Prometheus port (default 9101; 0 disables)")
    add(
        "--default-model",
        help="model loaded and warmed before ready (default piper-en-us-joe-medium)",
    )
    add("--preload-models", help="more models to load and pin at start, comma-separated")
    add("--ttl-ms", type=int, help="idle time before an unpinned model is evicted (default 600000)")
    add("--min-residency-ms", type=int, help="shortest residency before eviction (default 30000)")
    add("--resident-cap", type=int, help="most models resident at once, 0 = unlimited (default 0)")
    add("--max-parallel-loads", type=int, help="loads running at once (default 1)")
    add("--max-sessions", type=int, help="open sessions allowed (default 64)")
    add("--synth-threads", type=int, help="synthesis threads (default: CPU count)")
    add("--lead-ms", type=int, help="how far ahead of real time frames may leave (default 60)")
    add(
        "--release-idle-s",
        type=float,
        help="seconds without an utterance before models give back working memory "
        "(default 10; 0: never)",
    )
    add("--session-idle-timeout-s", type=float, help="end sessions idle this long (default 300)")
    add(
        "--drain-timeout-s",
        type=float,
        help="on SIGTERM, refuse new sessions and wait this long for open ones to end "
        "(default 0: stop at once; SIGINT never waits)",
    )
    add("--voicepacks", type=Path, help="voicepack folder (default ./voicepacks)")
    add("--cache-dir", type=Path, help="where engines assemble weights (default ~/.cache/duplex)")
    add("--device", choices=["cpu", "cuda"], help="inference device (default cpu)")
    add("--worker-id", help="worker name (default $POD_NAME or host:port)")
    add("--grpc-token-file", type=Path, help="require this token from callers (file)")
    add("--tls-cert", type=Path, help="serve mutual TLS: this worker's PEM certificate")
    add("--tls-key", type=Path, help="serve mutual TLS: its PEM key")
    add("--tls-ca", type=Path, help="serve mutual TLS: the CA of allowed callers")
    add("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="default INFO")
    add(
        "--log-text",
        action="store_const",
        const=True,
        help="log synthesized text (debug only; off by default for privacy)",
    )
    return p


def load_config(argv: list[str] | None = None) -> WorkerConfig:
    args = vars(parser().parse_args(argv))
    yaml_path: Path | None = args.pop("config")
    flags: dict[str, Any] = args
    return build_config(flags, yaml_path)


def main(argv: list[str] | None = None) -> None:
    try:
        config = load_config(argv)
    except ConfigError as exc:
        print(f"duplex-tts-worker: invalid configuration: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    setup_logging(config.log_level)
    from duplex_tts.app import StartupError, serve  # heavy imports after the config is good

    try:
        asyncio.run(serve(config))
    except StartupError as exc:
        print(f"duplex-tts-worker: cannot start: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        pass
