"""The ``duplex-orchestrator`` command line (``duplex up | say | talk``: ``duplex_command``)."""

from __future__ import annotations

import argparse
import ssl
import sys
from pathlib import Path

from duplex_orchestrator.config import ConfigError, OrchestratorConfig, build_config


def _semitones_or_off(value: str) -> float | str:
    if value.strip().lower() == "off":
        return "off"
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not semitones or 'off'") from None


def orchestrator_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="duplex-orchestrator",
        description="duplex orchestrator: voice sessions over WebRTC and WebSocket, "
        "or as an agent in LiveKit rooms (--transport livekit).",
    )
    add = p.add_argument
    add("--config", type=Path, help="YAML settings (same names as the flags, with _)")
    add(
        "--transport",
        choices=["web", "livekit"],
        help="web: browser page, WebSocket and WebRTC (default); livekit: join LiveKit rooms "
        "as an agent (env LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET; needs duplex-livekit)",
    )
    add(
        "--livekit-agent-name",
        help="LiveKit: join only rooms this agent is dispatched to by name (default: every room)",
    )
    add("--livekit-port", type=int, help="LiveKit: health endpoint port (default 8081)")
    add("--host", help="address to listen on (default 127.0.0.1)")
    add("--port", type=int, help="HTTP port (default 8080)")
    add(
        "--registry",
        choices=["static", "kubernetes"],
        help="where workers come from (default static)",
    )
    add(
        "--namespace",
        help="namespace of the worker Leases (kubernetes registry; default $POD_NAMESPACE)",
    )
    add("--worker", dest="workers", action="append", help="a TTS worker host:port (repeatable)")
    add("--default-model", help="TTS model for new sessions (default piper-en-us-joe-medium)")
    add("--api-key", help="API key for /ws and /api (visible in ps: prefer --api-key-file)")
    add("--api-key-file", type=Path, help="file holding the API key (or DUPLEX_API_KEY_FILE)")
    add(
        "--allowed-origin",
        dest="allowed_origins",
        action="append",
        help="browser origin allowed on /ws besides the page's own, e.g. "
        "https://app.example.com (repeatable; '*' allows any)",
    )
    add("--tls-cert", type=Path, help="serve HTTPS/WSS with this PEM certificate")
    add("--tls-key", type=Path, help="... and this PEM key")
    add("--worker-token-file", type=Path, help="token for worker gRPC (DUPLEX_GRPC_TOKEN_FILE)")
    add("--worker-tls-cert", type=Path, help="client certificate for mutual TLS to workers")
    add("--worker-tls-key", type=Path, help="its key")
    add("--worker-tls-ca", type=Path, help="CA that signed the workers' certificates")
    add("--stall-ms", type=int, help="silence before a speaking worker is probed (default 500)")
    add("--dev", action="store_const", const=True, help="development mode: no API key")
    add("--llm", choices=["echo", "openai"], help="LLM bridge (default echo)")
    add("--llm-url", help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1")
    add("--llm-model", help="model name sent to the LLM endpoint")
    add(
        "--llm-instructions",
        help="the system message: who the agent is, how it answers (default: a brief, "
        "spoken-style assistant; '': none)",
    )
    add(
        "--llm-history-chars",
        type=int,
        help="the conversation the LLM is given with each turn: its latest messages within "
        "this many characters (default 24000; 0: each turn alone)",
    )
    add(
        "--llm-timeout-s",
        type=float,
        help="longest wait for the LLM endpoint: to connect, and for each next piece of its "
        "stream (default 30)",
    )
    add(
        "--asr-model-dir",
        type=Path,
        help="faster-whisper model folder (default: Whisper base from PyPI)",
    )
    add("--asr-device", choices=["cpu", "cuda"], help="where Whisper runs (default cpu)")
    add(
        "--asr-workers",
        type=int,
        help="transcriptions the one Whisper model runs in parallel (default: one per core "
        "up to 4 cores, then one per two)",
    )
    add("--asr-threads", type=int, help="cores per transcription (default: shared out)")
    add(
        "--asr-window-step-s",
        type=float,
        help="fit Whisper's encoder window to the utterance in steps of this (default 1; "
        "0: always 30 s)",
    )
    add(
        "--asr-pad-s",
        type=float,
        help="silence after the utterance inside the fitted window (default 2)",
    )
    add(
        "--asr-repetition-penalty",
        type=float,
        help="penalty on tokens Whisper already wrote, against its loops on a short "
        "window (default 1.1; 1: none)",
    )
    add(
        "--vad",
        choices=["webrtc", "silero"],
        help="per-frame speech classifier: Silero VAD (default) or webrtcvad",
    )
    add("--vad-aggressiveness", type=int, help="webrtcvad 0-3 (default 2)")
    add("--silero-threshold", type=float, help="Silero VAD speech probability (default 0.5)")
    add(
        "--vad-onset-ms",
        type=int,
        help="speech that starts a turn or a barge-in (default 40 with Silero, 80 with webrtc)",
    )
    add(
        "--vad-end-ms",
        type=int,
        help="silence that ends any turn (default 1000; 500 with --end-of-turn silence)",
    )
    add(
        "--end-of-turn",
        choices=["transcript+smart-turn", "transcript", "smart-turn", "silence"],
        help="what ends a turn at a short pause: the transcript, Smart Turn v3.2, both "
        "(default), or silence alone (--vad-end-ms)",
    )
    add(
        "--end-of-turn-pause-ms",
        type=int,
        help="silence after which the turn's completeness is judged (default 200)",
    )
    add(
        "--end-of-turn-doubt-ms",
        type=int,
        help="silence that ends a question whose words read as complete while Smart Turn "
        "doubts it (default 500)",
    )
    add(
        "--end-of-turn-question-sure-unfinished",
        type=float,
        help="Smart Turn's probability below which a doubted question waits a "
        "statement's doubt, as one cut at a filler does (default 0.03; 0: never)",
    )
    add(
        "--end-of-turn-unmarked-sure",
        type=float,
        help="Smart Turn's probability at or above which words complete but for their "
        "closing mark wait a statement's doubt, not the full silence (default 0.95; 0: never)",
    )
    add(
        "--end-of-turn-statement-doubt-ms",
        type=int,
        help="the same for a statement, doubted by Smart Turn or by Whisper "
        "(--end-of-turn-statement-end) (default 700)",
    )
    add(
        "--end-of-turn-patience-turns",
        type=int,
        help="how many of a user's latest turns the session learns their pauses from: a "
        "statement's reply waits out the longest pause the user went on after (default 10; "
        "0: off)",
    )
    add(
        "--end-of-turn-patience-max-ms",
        type=int,
        help="the longest a user's learned pause makes the session wait, for a reply's sound "
        "and for the silence that ends their turns, once they went on just after that silence "
        "ended one (default 2000; at most --vad-end-ms: never past it)",
    )
    add(
        "--end-of-turn-unfinished-ms",
        type=int,
        help='the silence that ends a turn whose words want more at a pause ("... a table '
        'for", "I would like to order."; default 2000; at most --vad-end-ms: never past it)',
    )
    add(
        "--end-of-turn-patience-from",
        choices=["false-ends", "pauses"],
        help="what the session learns a user's pauses from: turns ended at a pause that the "
        "user went on after (default), or every pause inside a turn the user went on after",
    )
    add(
        "--barge-in-backchannels",
        choices=["resume", "stop"],
        help="what speech over a reply that is only an acknowledgement ('uh-huh', 'okay', "
        "'right') does: resume the reply, unanswered (default), or stop it as any words do",
    )
    add(
        "--end-of-turn-statement-end",
        type=float,
        help="Whisper's probability that a statement ends at its full stop, below which "
        "the turn is doubted (default 0.75; 0: never)",
    )
    add(
        "--end-of-turn-pitch-rise-st",
        type=float,
        help="semitones above the user's usual statement end at or past which a "
        "statement's pitch has not fallen and the turn is doubted (default 3; 0: never)",
    )
    add(
        "--end-of-turn-pitch-first-fall-st",
        type=_semitones_or_off,
        help="the usual statement end (semitones, negative: a fall) taken for a user until "
        "three of their statements are heard (default -3.5; off: no pitch judge until then)",
    )
    add(
        "--end-of-turn-question-end",
        type=float,
        help="Whisper's probability that a question ends at its '?', below which the "
        "transcript does not read as complete (default 0.85; 0: the rules alone)",
    )
    add(
        "--end-of-turn-last-word-ms",
        type=int,
        help="sound under the transcript's last word (Whisper's alignment) below which "
        "Whisper wrote it without hearing it and the turn is not complete (default 80; "
        "0: not checked)",
    )
    add(
        "--speculate-ms",
        type=int,
        help="silence after which the transcript and Smart Turn start speculatively, "
        "on an idle Whisper worker while no other session's user speaks (default 60; "
        "0: at the pause)",
    )
    add(
        "--speculate-busy-ms",
        type=int,
        help="the same while other sessions' users are speaking (default 120; 0: not then)",
    )
    add("--smart-turn-model", type=Path, help="Smart Turn ONNX file (default: from pipecat-ai)")
    add("--poll-ms", type=int, help="how often the static registry polls workers (default 2000)")
    add(
        "--ice-server",
        dest="ice_servers",
        action="append",
        help="WebRTC STUN/TURN URL, e.g. stun:stun.example.com:3478 (repeatable)",
    )
    add("--turn-username", help="TURN user name (with --ice-server turn:...)")
    add("--turn-credential", help="TURN password (prefer env DUPLEX_TURN_CREDENTIAL)")
    add(
        "--rtc-host",
        dest="rtc_hosts",
        action="append",
        help="address WebRTC offers as a host candidate (repeatable; default every interface's; "
        "127.0.0.1 keeps media on loopback)",
    )
    add(
        "--rtc-peer-network",
        dest="rtc_peer_networks",
        action="append",
        help="address or CIDR the browser's ICE candidates must be in (repeatable; default any)",
    )
    add("--rtc-keepalive-ms", type=int, help="close a silent WebRTC session after (default 10000)")
    add("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="default INFO")
    return p


def orchestrator_main(argv: list[str] | None = None) -> None:
    args = vars(orchestrator_parser().parse_args(argv))
    yaml_path = args.pop("config")
    try:
        config = build_config(args, yaml_path)
    except ConfigError as exc:
        print(f"duplex-orchestrator: invalid configuration: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    from aiohttp import web

    from duplex_orchestrator.app import AsrUnavailable, build_app, wire_security
    from duplex_protocol.ports import ADDRESS_ERRNOS, PortUnavailable, binding
    from duplex_protocol.wire import WireConfigError

    try:
        wire_security(config)
    except WireConfigError as exc:
        print(f"duplex-orchestrator: invalid configuration: {exc}", file=sys.stderr)
        raise SystemExit(2) from None

    if "smart-turn" in config.end_of_turn and config.transport == "web":
        from duplex_orchestrator.smart_turn import SmartTurnMissing, find_model

        try:
            if config.smart_turn_model is None:
                find_model()
            elif not config.smart_turn_model.is_file():
                raise SmartTurnMissing(f"smart_turn_model: no file at {config.smart_turn_model}")
        except SmartTurnMissing as exc:
            print(f"duplex-orchestrator: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
    _setup_logging(config.log_level)
    if config.transport == "livekit":
        _serve_livekit(config)
        return
    if config.dev:
        print(
            "duplex-orchestrator: DEV MODE — no API key is required; do not expose this port.",
            file=sys.stderr,
        )
    ssl_context = _ssl_context(config)
    address = f"{config.host}:{config.port}"
    try:
        # run_app binds after the app's start-up: only a bind fails with these errnos.
        with binding("HTTP and WebSocket", address, only=ADDRESS_ERRNOS):
            web.run_app(
                build_app(config),
                host=config.host,
                port=config.port,
                print=None,
                ssl_context=ssl_context,
            )
    except AsrUnavailable as exc:  # raised while the app starts, before it listens
        print(f"duplex-orchestrator: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except PortUnavailable as exc:
        print(f"duplex-orchestrator: {exc} (see --host and --port)", file=sys.stderr)
        raise SystemExit(1) from None


def _ssl_context(config: OrchestratorConfig) -> ssl.SSLContext | None:
    """HTTPS's context; a certificate or key that cannot be loaded exits 2, in one line."""
    if config.tls_cert is None or config.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(config.tls_cert, config.tls_key)
    except OSError as exc:  # missing, unreadable, not PEM, a key of another certificate
        reason = exc.strerror or str(exc)
        if isinstance(exc, ssl.SSLError):
            reason = f"not a PEM certificate and its own key ({exc.reason or reason})"
        print(
            f"duplex-orchestrator: invalid configuration: tls_cert, tls_key: cannot load "
            f"{config.tls_cert} with the key {config.tls_key}: {reason}",
            file=sys.stderr,
        )
        raise SystemExit(2) from None
    return context


def _serve_livekit(config: OrchestratorConfig) -> None:
    try:
        from duplex_livekit.server import serve
    except ImportError as exc:
        print(
            f"duplex-orchestrator: --transport livekit needs the duplex-livekit package "
            f"(pip install duplex-livekit; uv sync --package duplex-livekit): {exc}",
            file=sys.stderr,
        )
        raise SystemExit(2) from None
    serve(config)


def _setup_logging(level: str) -> None:
    import logging

    from duplex_protocol.logs import setup_logging

    setup_logging(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


__all__ = ["orchestrator_main", "orchestrator_parser"]

if __name__ == "__main__":
    orchestrator_main()
