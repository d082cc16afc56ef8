"""The ``duplex`` command: ``duplex up`` (a local stack), ``duplex say``, ``ask`` and ``talk``."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any


def duplex_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="duplex", description="duplex: realtime voice agents.")
    sub = p.add_subparsers(dest="command", required=True, help="what to do")
    up = sub.add_parser("up", help="start one worker and one orchestrator (dev mode)")
    up.add_argument("--port", type=int, default=8080, help="orchestrator HTTP port (default 8080)")
    up.add_argument("--worker-port", type=int, default=7001, help="worker gRPC port (default 7001)")
    up.add_argument(
        "--worker-metrics-port",
        type=int,
        default=9101,
        help="worker Prometheus port (default 9101; 0: none, so two stacks can share a host)",
    )
    up.add_argument(
        "--voicepacks",
        type=Path,
        default=Path("voicepacks"),
        help="voicepack folder the worker reads (default ./voicepacks)",
    )
    up.add_argument(
        "--model",
        default="piper-en-us-joe-medium",
        help="voice of new sessions, loaded at start (default piper-en-us-joe-medium)",
    )
    up.add_argument(
        "--families",
        default="piper,kokoro,mock",
        help="TTS families the worker serves; others load on demand (default piper,kokoro,mock)",
    )
    up.add_argument(
        "--llm-url",
        help="an OpenAI-compatible endpoint that writes the replies, e.g. "
        "http://127.0.0.1:11434/v1 (its key from $DUPLEX_LLM_API_KEY; default: echo)",
    )
    up.add_argument("--llm-model", help="the model asked at --llm-url")
    up.add_argument(
        "--config",
        type=Path,
        help="the orchestrator's settings, a YAML file (any of its flags, with _: "
        "llm_instructions, end_of_turn_pause_ms, ...); the flags above win",
    )
    up.add_argument(
        "--worker-config",
        type=Path,
        help="the worker's settings, a YAML file (any of its flags, with _); the flags above win",
    )
    for name, helptext in (
        ("say", "speak a text and save the reply"),
        ("ask", "type a turn to the agent and save its spoken answer"),
        ("talk", "send a WAV as if spoken"),
    ):
        s = sub.add_parser(name, help=helptext)
        if name == "say":
            s.add_argument("text", help="what the voice speaks (as it is: no LLM answers it)")
        elif name == "ask":
            s.add_argument("text", help="the user's words, typed: the LLM answers them")
        else:
            s.add_argument(
                "--wav",
                type=Path,
                required=True,
                help="audio file FFmpeg reads: WAV (any sample format), FLAC, MP3, Ogg; "
                "any rate, channels mixed down",
            )
            s.add_argument(
                "--push-to-talk",
                action="store_true",
                help="manual turns: the recording is one turn, ended by end_turn, no audio after "
                "(a button let go; default: silence after it, as an open microphone)",
            )
        s.add_argument("--model", default="", help="voice to answer with (default: the server's)")
        s.add_argument(
            "--out", type=Path, default=Path("reply.wav"), help="reply WAV (default reply.wav)"
        )
        s.add_argument(
            "--url",
            default=os.environ.get("DUPLEX_URL", "ws://127.0.0.1:8080/ws"),
            help="orchestrator WebSocket (default $DUPLEX_URL, else ws://127.0.0.1:8080/ws)",
        )
        s.add_argument(
            "--key",
            default=os.environ.get("DUPLEX_API_KEY", ""),
            help="API key (default $DUPLEX_API_KEY; none in dev mode)",
        )
        s.add_argument(
            "--timeout", type=float, default=60.0, help="seconds to wait for the reply (default 60)"
        )
    return p


def main(argv: list[str] | None = None) -> None:
    p = duplex_parser()
    args = p.parse_args(argv)
    if args.command == "up":
        raise SystemExit(_up(args))
    raise SystemExit(asyncio.run(_client(args)))


async def _client(args: Any) -> int:
    import aiohttp

    from duplex_orchestrator import client

    if not args.out.parent.is_dir():  # said now, not after the reply has come
        problem = f"cannot write {args.out}: no folder {args.out.parent}"
        print(f"duplex {args.command}: {problem}", file=sys.stderr)
        return 1
    try:
        if args.command in ("say", "ask"):
            speak = client.say if args.command == "say" else client.ask
            convo = await speak(args.url, args.key, args.text, args.model, timeout_s=args.timeout)
        else:
            convo = await client.talk(
                args.url,
                args.key,
                client.read_audio_16k(args.wav),
                args.model,
                timeout_s=args.timeout,
                push_to_talk=args.push_to_talk,
            )
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        print(f"duplex {args.command}: {exc}", file=sys.stderr)
        return 1
    for event in convo.events:
        if event["type"] == "asr" and event.get("final"):
            print(f"heard:  {event['text']}")
        elif event["type"] == "latency":
            print(
                "latency: " + ", ".join(f"{k} {v}" for k, v in event.items() if k.endswith("_ms"))
            )
        elif event["type"] == "error":
            print(f"error:  {event['code']}: {event['message']}", file=sys.stderr)
    reply = "".join(convo.texts("reply"))
    if reply:
        print(f"reply:  {reply}")
    if convo.nothing_to_answer:
        heard = "no words" if any(e["type"] == "asr" for e in convo.events) else "no speech"
        print(f"duplex talk: heard {heard} in {args.wav}: nothing to answer", file=sys.stderr)
        return 1
    if not convo.audio:
        if not any(event["type"] == "error" for event in convo.events):  # else: said above
            print(f"duplex {args.command}: no reply audio", file=sys.stderr)
        return 1
    try:
        convo.save(args.out)
    except OSError as exc:
        print(f"duplex {args.command}: cannot write {args.out}: {exc.strerror}", file=sys.stderr)
        return 1
    print(f"saved {len(convo.audio) / 96000:.2f} s of reply audio to {args.out}")
    if not convo.ended:
        print(
            f"duplex {args.command}: the reply did not finish (timed out or failed); "
            "the audio saved is partial",
            file=sys.stderr,
        )
        return 1
    return 0


def worker_command(args: Any) -> list[str]:
    """The worker ``duplex up`` starts: its flags, and the YAML it was given (pure)."""
    return [
        sys.executable,
        "-m",
        "duplex_tts",
        *(["--config", str(args.worker_config)] if args.worker_config else []),
        "--adapter",
        args.families,
        "--default-model",
        args.model,
        "--host",
        "127.0.0.1",
        "--port",
        str(args.worker_port),
        "--metrics-port",
        str(args.worker_metrics_port),
        "--voicepacks",
        str(args.voicepacks),
    ]


def orchestrator_command(args: Any) -> list[str]:
    """The orchestrator ``duplex up`` starts, in dev mode, its media on loopback (pure)."""
    llm = [
        *(["--llm-url", args.llm_url] if args.llm_url else []),
        *(["--llm-model", args.llm_model] if args.llm_model else []),
    ]
    return [
        sys.executable,
        "-m",
        "duplex_orchestrator",
        *(["--config", str(args.config)] if args.config else []),
        "--dev",
        # dev mode has no API key: the stack listens on this host only, whatever a file says
        "--host",
        "127.0.0.1",
        "--port",
        str(args.port),
        "--transport",
        "web",
        "--registry",
        "static",
        "--worker",
        f"127.0.0.1:{args.worker_port}",
        "--default-model",
        args.model,
        # A local stack: WebRTC media stays on loopback, like everything else here.
        "--rtc-host",
        "127.0.0.1",
        "--rtc-peer-network",
        "127.0.0.1",
        *llm,
    ]


# Settings duplex up gives its children as flags (flags win over a YAML file), and the
# flag of duplex up that sets each: the same names in --config / --worker-config are
# ignored, which duplex up says rather than leave a person wondering.
_WORKER_OWNS = {
    "adapters": "--families",
    "default_model": "--model",
    "host": "127.0.0.1, always",
    "port": "--worker-port",
    "metrics_port": "--worker-metrics-port",
    "voicepacks": "--voicepacks",
}
_ORCHESTRATOR_OWNS = {
    "dev": "on, always",
    "host": "127.0.0.1, always",
    "port": "--port",
    "transport": "web, always",
    "registry": "static, always",
    "workers": "--worker-port",
    "default_model": "--model",
    "rtc_hosts": "127.0.0.1, always",
    "rtc_peer_networks": "127.0.0.1, always",
}


def ignored_settings(settings: object, owns: dict[str, str], given: dict[str, str]) -> list[str]:
    """What a YAML file's ``settings`` set that duplex up's flags decide (pure): the
    names ``owns`` always, and those of ``given`` (flag → setting) given as flags."""
    if not isinstance(settings, dict):
        return []  # the child says what is wrong with the file
    decided = {**owns, **given}
    names = {str(key).replace("-", "_") for key in settings}
    return [f"{name} (duplex up's {decided[name]})" for name in sorted(names & decided.keys())]


def _warn_ignored(path: Path | None, owns: dict[str, str], given: dict[str, str]) -> None:
    if path is None:
        return
    import yaml

    try:
        settings = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return  # the child reads it again and says what is wrong
    ignored = ignored_settings(settings, owns, given)
    if ignored:
        print(f"duplex up: ignored in {path}: {', '.join(ignored)}", file=sys.stderr)


def _up(args: Any) -> int:
    llm_flags = {"llm_url": "--llm-url", "llm_model": "--llm-model"}
    _warn_ignored(args.worker_config, _WORKER_OWNS, {})
    _warn_ignored(
        args.config,
        _ORCHESTRATOR_OWNS,
        {name: flag for name, flag in llm_flags.items() if getattr(args, name)},
    )
    worker = subprocess.Popen(worker_command(args))
    orchestrator = subprocess.Popen(orchestrator_command(args))
    children = (worker, orchestrator)

    def stop(*_: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    # SIGTERM (`kill`, a process manager, `docker stop`) stops the stack as Ctrl-C does,
    # and so does SIGINT when a non-interactive shell started it as a background job,
    # which ignores SIGINT: Python then never turns it into KeyboardInterrupt.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        url = f"http://127.0.0.1:{args.port}"
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if any(c.poll() is not None for c in children):
                print(
                    "duplex up: a process exited during start-up; see its log above",
                    file=sys.stderr,
                )
                return 1
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            time.sleep(0.3)
        else:
            print("duplex up: not healthy after 180 s", file=sys.stderr)
            return 1
        print(
            f"\nduplex is up (dev mode, no API key): open {url}\nPress Ctrl-C to stop.\n",
            flush=True,
        )
        while all(c.poll() is None for c in children):
            time.sleep(0.5)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        stop()
        for child in children:
            try:
                child.wait(timeout=10)
            except (subprocess.TimeoutExpired, KeyboardInterrupt):
                # Stuck, or Ctrl-C again: kill it rather than leave it holding its port.
                child.kill()
                child.wait()


if __name__ == "__main__":
    main()
