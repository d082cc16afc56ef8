"""Orchestrator configuration: defaults < YAML (--config) < environment < flags."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from duplex_orchestrator.endpoint import EndOfTurnMode
from duplex_orchestrator.llm import HISTORY_CHARS, SYSTEM_PROMPT
from duplex_orchestrator.vad import VadKind
from duplex_orchestrator.whisper_decoding import REPETITION_PENALTY
from duplex_protocol.config_errors import describe


class ConfigError(Exception):
    """Invalid configuration: one line naming each field wrong, for a person to fix."""


class OrchestratorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    transport: Literal["web", "livekit"] = "web"
    """web: the HTTP server (browser page, WebSocket, WebRTC); livekit: an agent in
    LiveKit rooms (needs the duplex-livekit package and LIVEKIT_URL/_API_KEY/_API_SECRET)."""
    livekit_url: str = ""
    """LiveKit server URL, e.g. wss://my-project.livekit.cloud (env LIVEKIT_URL)."""
    livekit_api_key: str = ""
    """env LIVEKIT_API_KEY (never a flag: it would show in ps)."""
    livekit_api_secret: str = ""
    """env LIVEKIT_API_SECRET."""
    livekit_agent_name: str = ""
    """Set: the agent joins only rooms it is dispatched to by name; empty: every new room."""
    livekit_port: int = Field(default=8081, ge=1, le=65535)
    """The LiveKit agent server's health endpoint (GET / answers OK when connected)."""
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    registry: Literal["static", "kubernetes"] = "static"
    """static: --worker addresses polled over gRPC; kubernetes: worker Leases, listed + watched."""
    namespace: str = Field(default_factory=lambda: os.environ.get("POD_NAMESPACE", "default"))
    """Namespace of the worker Leases (kubernetes registry)."""
    workers: list[str] = ["127.0.0.1:7001"]
    """TTS worker addresses for the static registry (host:port)."""
    default_model: str = "piper-en-us-joe-medium"
    api_key: str = ""
    """Required on /ws and /api unless ``dev`` is set (env DUPLEX_API_KEY)."""
    api_key_file: Path | None = None
    """A file holding the API key (env DUPLEX_API_KEY_FILE): keeps it out of ``ps``."""
    allowed_origins: list[str] = []
    """Browser origins allowed on /ws besides the page's own (``*``: any). A
    WebSocket is not bound by CORS, so without this check any site a user
    visits could open a session with the user's key."""
    tls_cert: Path | None = None
    """Serve HTTPS/WSS with this PEM certificate (and tls_key)."""
    tls_key: Path | None = None
    worker_token_file: Path | None = None
    """Token sent to workers (else $DUPLEX_GRPC_TOKEN_FILE)."""
    worker_tls_cert: Path | None = None
    """Client certificate for mutual TLS to workers (else $DUPLEX_GRPC_TLS_CERT)."""
    worker_tls_key: Path | None = None
    worker_tls_ca: Path | None = None
    stall_ms: int = Field(default=500, ge=100, le=10_000)
    """A reply stream silent this long gets its worker probed; no answer: fail over."""
    probe_timeout_ms: int = Field(default=750, ge=100, le=10_000)
    dev: bool = False
    """Development mode: no API key (``duplex up`` sets it, and says so)."""
    llm: Literal["echo", "openai"] = "echo"
    llm_url: str = ""
    """OpenAI-compatible base URL (…/v1); setting it selects the openai bridge."""
    llm_model: str = "gpt-4o-mini"
    llm_api_key_env: str = "DUPLEX_LLM_API_KEY"
    """Environment variable holding the LLM key (never put keys in flags)."""
    llm_instructions: str = Field(default=SYSTEM_PROMPT, max_length=20_000)
    """The system message: who the agent is and how it answers; empty: none."""
    llm_history_chars: int = Field(default=HISTORY_CHARS, ge=0, le=1_000_000)
    """The conversation the LLM is given with each turn: its latest messages within this
    many characters (about a quarter as many tokens); 0: each turn alone."""
    llm_timeout_s: float = Field(default=30.0, gt=0, le=600)
    """The longest wait for the LLM endpoint: to connect, and for each next piece of
    its stream (not for the whole answer, which takes as long as the model writes)."""
    asr_model_dir: Path | None = None
    """A faster-whisper model folder; default: Whisper base assembled from PyPI."""
    asr_device: Literal["cpu", "cuda"] = "cpu"
    asr_language: str = "en"
    asr_workers: int = Field(default=0, ge=0, le=64)
    """Transcriptions run in parallel by the one Whisper model (0: ``asr.default_workers``)."""
    asr_threads: int = Field(default=0, ge=0, le=256)
    """Cores per transcription (0: the cores divided among the workers)."""
    asr_window_step_s: float = Field(default=1.0, ge=0, le=30)
    """Whisper's encoder window fits the utterance in steps of this; 0: always 30 s."""
    asr_pad_s: float = Field(default=2.0, ge=0, le=10)
    """Silence added after the utterance inside the fitted window."""
    asr_repetition_penalty: float = Field(default=REPETITION_PENALTY, ge=1, le=2)
    """CTranslate2's penalty on tokens Whisper already wrote, against its loops (1: none)."""
    vad: VadKind = "silero"
    """The per-frame speech classifier: Silero VAD or webrtcvad (``bench_vad`` compares
    them: Silero found no speech in coughs, typing, music or knocks; webrtcvad did)."""
    vad_aggressiveness: int = Field(default=2, ge=0, le=3)
    """webrtcvad's 0-3."""
    silero_threshold: float = Field(default=0.5, gt=0.15, lt=1)
    """Silero's speech probability at an onset (speech lasts down to 0.15 below it)."""
    vad_onset_ms: int | None = Field(default=None, ge=20, le=1000)
    """Speech that starts a turn or a barge-in. Default: 40 ms with Silero, 80 ms with
    webrtcvad (which needs the longer run to ignore noise). See ``speech_onset_ms``."""
    vad_end_ms: int | None = Field(default=None, ge=100, le=3000)
    """Silence that ends any turn. Default: 1000 ms where complete-sounding turns
    end sooner, at the end-of-turn pause; 500 ms where silence alone decides
    (``end_of_turn: silence``, and the LiveKit agent). See ``turn_silence_ms``."""
    end_of_turn: EndOfTurnMode = "transcript+smart-turn"
    """What decides, at a short pause, that the turn is complete: the transcript's
    punctuation and last word, Smart Turn v3.2, both, or ``silence`` (only vad_end_ms)."""
    end_of_turn_pause_ms: int = Field(default=200, ge=60, le=2000)
    """Silence after which completeness is judged."""
    end_of_turn_doubt_ms: int = Field(default=500, ge=60, le=3000)
    """Silence that ends a question whose words read as complete while Smart Turn
    doubts it (``transcript+smart-turn``); at or above vad_end_ms: only the full
    silence does."""
    end_of_turn_statement_doubt_ms: int = Field(default=700, ge=60, le=3000)
    """The same for a statement, doubted by Smart Turn or by Whisper (see
    end_of_turn_statement_end): a statement's first half is often a whole sentence
    ("I need to pick up."), so a hesitation hides there more than in a question."""
    end_of_turn_patience_turns: int = Field(default=10, ge=0, le=100)
    """How many of a user's latest turns the session remembers their longest pause in:
    a reply to a statement (or to a doubted turn) ended at a pause sounds only once
    the silence is longer than the longest pause this user went on after (0: off)."""
    end_of_turn_patience_max_ms: int = Field(default=2000, ge=0, le=3000)
    """The longest a user's learned pause makes the session wait, for a reply's sound
    and for the silence that ends their turns: past vad_end_ms once the user went on
    within half a second of a turn that silence ended, with words that stopped its
    reply (at most vad_end_ms: never past it)."""
    end_of_turn_unfinished_ms: int = Field(default=2000, ge=0, le=3000)
    """The silence that ends a turn whose words want more at a pause (``wants_more``:
    "... a table for", "I would like to order."): a person hesitating there may pause
    past vad_end_ms (at most vad_end_ms: never past it)."""
    end_of_turn_patience_from: Literal["false-ends", "pauses"] = "false-ends"
    """What it learns from: ``false-ends``, turns ended at a pause that the user went
    on after (the judges were wrong for this user), or every pause inside a turn the
    user went on after, judged or not (``pauses``: every hesitant user waits longer)."""
    end_of_turn_statement_end: float = Field(default=0.75, ge=0, le=1)
    """Whisper's probability that a statement ends at its full stop, below which the
    turn is doubted and ends after end_of_turn_statement_doubt_ms (0: never)."""
    end_of_turn_pitch_rise_st: float = Field(default=3.0, ge=0, le=24)
    """Semitones above this user's usual statement end (learned over their last 10
    statements, once 3 are heard) at or past which a statement's pitch has not
    fallen: the turn is doubted and ends after end_of_turn_statement_doubt_ms
    (0: never)."""
    end_of_turn_pitch_first_fall_st: float | None = Field(default=-3.5, ge=-12, le=0)
    """The usual statement end, in semitones, taken for a user until the session has
    heard three of their statements (most voices fall 2 to 6 at a full stop); "off"
    (or null): no pitch judge for a user's first statements."""
    end_of_turn_question_sure_unfinished: float = Field(default=0.03, ge=0, le=0.5)
    """Smart Turn's probability below which it is sure a question is unfinished: the
    doubted question waits end_of_turn_statement_doubt_ms, not end_of_turn_doubt_ms
    (0: never). A filler before the pause scores 0.005-0.03, few complete questions do."""
    end_of_turn_unmarked_sure: float = Field(default=0.95, ge=0, le=1)
    """Smart Turn's probability at or above which words that read complete but for
    their closing mark (Whisper leaves it out on short commands and telephone speech:
    "10 of clubs") are doubted, ending after end_of_turn_statement_doubt_ms, not
    unfinished, waiting vad_end_ms (0: never)."""
    end_of_turn_question_end: float = Field(default=0.85, ge=0, le=1)
    """Whisper's probability that a question ends at its "?", below which the
    transcript does not read as complete (0: the transcript's rules alone)."""
    end_of_turn_last_word_ms: int = Field(default=80, ge=0, le=1000)
    """Sound under the transcript's last word, by Whisper's alignment of its words on
    the audio, below which Whisper wrote the word without hearing it ("Send a message
    to me." of "Send a message to"), so the transcript does not read as complete
    (0: not checked, and no alignment pass)."""
    barge_in_backchannels: Literal["resume", "stop"] = "resume"
    """Speech over a reply whose words are only a listener's acknowledgement ("uh-huh",
    "okay", "right": ``turns.is_backchannel``): ``resume`` the reply, as for a cough,
    and answer nothing; ``stop``: it stops the reply and is answered, as any words."""
    speculate_ms: int = Field(default=60, ge=0, le=2000)
    """Silence inside speech after which the transcript (and Smart Turn) start
    speculatively on an idle Whisper worker, while no other session's user is
    speaking, so the judgement at the pause finds them under way or done; 0: they
    start at the pause."""
    speculate_busy_ms: int = Field(default=120, ge=0, le=2000)
    """The same while other sessions' users are speaking (0: not then; never shorter
    than speculate_ms): a guess on a short silence is more often stale, and its CPU
    is what their turns will wait for."""
    smart_turn_model: Path | None = None
    """Smart Turn's ONNX file; default: the one inside the installed pipecat-ai."""
    smart_turn_threshold: float = Field(default=0.5, ge=0, le=1)
    poll_ms: int = Field(default=2000, ge=100)
    ice_servers: list[str] = []
    """STUN/TURN URLs for WebRTC, given to aiortc and the browser, e.g.
    ``stun:stun.example.com:3478``, ``turn:turn.example.com:3478?transport=udp``."""
    turn_username: str = ""
    turn_credential: str = ""
    """TURN password (env DUPLEX_TURN_CREDENTIAL; sent to the browser, which needs it)."""
    rtc_hosts: list[str] = []
    """Addresses WebRTC offers as host candidates (default: every interface's)."""
    rtc_peer_networks: list[str] = []
    """Addresses or CIDRs the browser's candidates must be in (default: any IP)."""
    rtc_keepalive_ms: int = Field(default=10_000, ge=1000, le=300_000)
    """A WebRTC session whose data channel is silent this long is closed."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    def speech_onset_ms(self) -> int:
        """The run of speech that starts a turn (or a barge-in), for this VAD."""
        if self.vad_onset_ms is not None:
            return self.vad_onset_ms
        return 40 if self.vad == "silero" else 80

    def turn_silence_ms(self, *, judged: bool) -> int:
        """The silence that ends any turn, where turns are also ``judged`` at pauses or not."""
        if self.vad_end_ms is not None:
            return self.vad_end_ms
        return 1000 if judged else 500

    @field_validator(
        "workers", "allowed_origins", "ice_servers", "rtc_hosts", "rtc_peer_networks", mode="before"
    )
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("end_of_turn_pitch_first_fall_st", mode="before")
    @classmethod
    def _off(cls, value: Any) -> Any:
        return None if isinstance(value, str) and value.strip().lower() == "off" else value

    @model_validator(mode="after")
    def _check(self) -> OrchestratorConfig:
        if self.llm_url:
            object.__setattr__(self, "llm", "openai")
        if self.api_key_file is not None and not self.api_key:
            try:
                key = self.api_key_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ValueError(
                    f"api_key_file: cannot read {self.api_key_file}: {exc.strerror}"
                ) from None
            object.__setattr__(self, "api_key", key)
        # Every problem at once: a person fixing a config should not meet them one per start.
        problems = [*self._timing_problems(), *self._service_problems()]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _timing_problems(self) -> list[str]:
        """The end-of-turn silences out of their order: speculation, pause, doubts, end."""
        if self.end_of_turn == "silence":
            return []
        problems = []
        end_ms = self.turn_silence_ms(judged=True)
        if self.end_of_turn_pause_ms >= end_ms:
            given = "" if self.vad_end_ms is not None else ", the default"
            problems.append(
                f"end_of_turn_pause_ms ({self.end_of_turn_pause_ms}) must be shorter than "
                f"vad_end_ms ({end_ms}{given}), the silence that ends any turn"
            )
        for name in ("end_of_turn_doubt_ms", "end_of_turn_statement_doubt_ms"):
            if getattr(self, name) <= self.end_of_turn_pause_ms:
                problems.append(
                    f"{name} ({getattr(self, name)}) must be longer than end_of_turn_pause_ms "
                    f"({self.end_of_turn_pause_ms}), where the judges are asked"
                )
        for name in ("speculate_ms", "speculate_busy_ms"):
            if getattr(self, name) >= self.end_of_turn_pause_ms:
                problems.append(
                    f"{name} ({getattr(self, name)}) must be shorter than "
                    f"end_of_turn_pause_ms ({self.end_of_turn_pause_ms}), or 0"
                )
        return problems

    def _service_problems(self) -> list[str]:
        """TLS, the LLM, the ASR model, LiveKit, the API key, WebRTC and the registry."""
        problems = []
        if (self.tls_cert is None) != (self.tls_key is None):
            problems.append("tls_cert: HTTPS needs both --tls-cert and --tls-key")
        if self.llm == "openai" and not self.llm_url:
            problems.append("llm_url: required when llm is 'openai'")
        if self.llm_url and not self.llm_url.startswith(("http://", "https://")):
            problems.append(
                f"llm_url: {self.llm_url!r} must be an http:// or https:// base URL, "
                "e.g. http://127.0.0.1:8000/v1"
            )
        if self.asr_model_dir is not None and not (self.asr_model_dir / "model.bin").is_file():
            problems.append(
                f"asr_model_dir: {self.asr_model_dir} holds no model.bin: give a folder of a "
                "CTranslate2 Whisper model, as faster-whisper loads (model.bin, config.json, "
                "tokenizer.json, vocabulary)"
            )
        if self.transport == "livekit":
            missing = [
                name.upper()
                for name in ("livekit_url", "livekit_api_key", "livekit_api_secret")
                if not getattr(self, name)
            ]
            if missing:
                problems.append(
                    f"--transport livekit needs env {', '.join(missing)} "
                    "(the LiveKit server's URL, API key and secret)"
                )
            elif not self.livekit_url.startswith(("ws://", "wss://", "http://", "https://")):
                problems.append(
                    f"livekit_url: {self.livekit_url!r} must start with wss:// (or ws://, https://)"
                )
        elif not self.dev and not self.api_key:
            problems.append(
                "api_key: set --api-key or DUPLEX_API_KEY (or --dev for local development)"
            )
        problems += [
            f"ice_servers: {url!r} must start with stun:, stuns:, turn: or turns:"
            for url in self.ice_servers
            if not url.startswith(("stun:", "stuns:", "turn:", "turns:"))
        ]
        for net in [*self.rtc_hosts, *self.rtc_peer_networks]:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                problems.append(f"rtc: {net!r} is not an IP address or network")
        if self.registry == "static" and not self.workers:
            problems.append("workers: the static registry needs at least one --worker host:port")
        return problems


def build_config(flags: dict[str, Any], yaml_path: Path | None = None) -> OrchestratorConfig:
    values: dict[str, Any] = {}
    if yaml_path is not None:
        try:
            data = yaml.safe_load(yaml_path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(
                f"config: cannot read {yaml_path}: {exc}".replace("\n", " ")
            ) from None
        if not isinstance(data, dict):
            raise ConfigError(f"config: {yaml_path} must hold a mapping of settings")
        values.update({str(k).replace("-", "_"): v for k, v in data.items()})
    if os.environ.get("DUPLEX_API_KEY"):
        values["api_key"] = os.environ["DUPLEX_API_KEY"]
    if os.environ.get("DUPLEX_TURN_CREDENTIAL"):
        values["turn_credential"] = os.environ["DUPLEX_TURN_CREDENTIAL"]
    for name in ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"):
        if os.environ.get(name):
            values[name.lower()] = os.environ[name]
    if os.environ.get("DUPLEX_API_KEY_FILE"):
        values["api_key_file"] = os.environ["DUPLEX_API_KEY_FILE"]
    values.update({k: v for k, v in flags.items() if v is not None})
    try:
        return OrchestratorConfig.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(describe(exc.errors())) from None
