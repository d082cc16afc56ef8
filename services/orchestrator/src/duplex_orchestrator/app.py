"""The orchestrator's HTTP server: web pages, /ws, /rtc, /api, /healthz, /metrics, API key."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from importlib import resources
from urllib.parse import urlsplit

import numpy as np
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from duplex_orchestrator import lab, metrics, prosody
from duplex_orchestrator.asr import Transcriber
from duplex_orchestrator.config import OrchestratorConfig
from duplex_orchestrator.endpoint import EndOfTurn
from duplex_orchestrator.llm import EchoBridge, LLMBridge, OpenAIBridge
from duplex_orchestrator.registry.kubernetes import KubernetesRegistry
from duplex_orchestrator.registry.static import StaticRegistry
from duplex_orchestrator.session import Services
from duplex_orchestrator.silero import SileroModel
from duplex_orchestrator.smart_turn import SmartTurn
from duplex_orchestrator.transports import REGISTRY, SERVICES, rtc_http, websocket
from duplex_orchestrator.transports.ice import offer_only
from duplex_orchestrator.transports.webrtc import IceServer, RtcSettings
from duplex_orchestrator.vad import FrameClassifier, WebRtcClassifier
from duplex_protocol.kube import KubeClient, KubeConfig
from duplex_protocol.wire import WireSecurity

log = logging.getLogger(__name__)
WEB = resources.files("duplex_orchestrator") / "web"
PROTECTED = ("/ws", "/rtc", "/api/")
"""Paths that open sessions or read state: the API key and the origin check apply."""


def _presented_keys(request: web.Request) -> list[str]:
    """Every key the request offers: a bearer token (any case), X-API-Key, ?key=."""
    keys = []
    scheme, _, credential = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer" and credential.strip():
        keys.append(credential.strip())
    keys += [k for k in (request.headers.get("X-API-Key", ""), request.query.get("key", "")) if k]
    return keys


def _key_middleware(api_key: str) -> Middleware:
    expected = api_key.encode()

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(PROTECTED):
            # Any one matching key will do: a proxy may set its own Authorization.
            matches = [hmac.compare_digest(k.encode(), expected) for k in _presented_keys(request)]
            if not any(matches):
                raise web.HTTPUnauthorized(
                    text="missing or wrong API key (header 'Authorization: Bearer KEY', "
                    "'X-API-Key: KEY' or '?key=KEY')"
                )
        return await handler(request)

    return check


def origin_allowed(origin: str, host: str, allowed: list[str]) -> bool:
    """A browser's ``Origin`` may open /ws if it is the page's own or listed (pure)."""
    if not origin:
        return True  # not a browser (browsers always send Origin on WebSockets)
    if "*" in allowed or origin in allowed:
        return True
    return urlsplit(origin).netloc.lower() == host.lower()


def _origin_middleware(allowed: list[str]) -> Middleware:
    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(PROTECTED):
            origin = request.headers.get("Origin", "")
            if not origin_allowed(origin, request.host, allowed):
                log.warning(
                    "session request from a foreign origin refused",
                    extra={"event": "origin_refused", "origin": origin[:200]},
                )
                raise web.HTTPForbidden(
                    text=f"origin {origin[:200]} may not open sessions here "
                    "(add it with --allowed-origin)"
                )
        return await handler(request)

    return check


def wire_security(config: OrchestratorConfig) -> WireSecurity:
    return WireSecurity.load(
        token_file=config.worker_token_file,
        cert_file=config.worker_tls_cert,
        key_file=config.worker_tls_key,
        ca_file=config.worker_tls_ca,
    )


def make_llm(config: OrchestratorConfig) -> LLMBridge:
    if config.llm == "openai":
        return OpenAIBridge(
            config.llm_url,
            config.llm_model,
            os.environ.get(config.llm_api_key_env, ""),
            system_prompt=config.llm_instructions,
            wait_s=config.llm_timeout_s,
        )
    return EchoBridge()


def make_registry(config: OrchestratorConfig) -> StaticRegistry | KubernetesRegistry:
    security = wire_security(config)
    if config.registry == "static":
        return StaticRegistry(config.workers, poll_s=config.poll_ms / 1000, security=security)
    kube = KubeConfig.detect()
    if kube is None:
        raise RuntimeError(
            "--registry kubernetes needs a cluster: run in a pod with a service account, "
            "or give a kubeconfig ($KUBECONFIG or ~/.kube/config), "
            "or set DUPLEX_KUBE_URL (e.g. to `kubectl proxy`)"
        )
    return KubernetesRegistry(KubeClient(kube), config.namespace, security=security)


def rtc_settings(config: OrchestratorConfig) -> RtcSettings:
    turn = [u for u in config.ice_servers if u.startswith("turn")]
    stun = [u for u in config.ice_servers if not u.startswith("turn")]
    servers = [IceServer(stun)] if stun else []
    if turn:
        servers.append(IceServer(turn, config.turn_username, config.turn_credential))
    return RtcSettings(
        ice_servers=servers,
        peer_networks=config.rtc_peer_networks,
        keepalive_s=config.rtc_keepalive_ms / 1000,
    )


class AsrUnavailable(RuntimeError):
    """Whisper cannot run as configured (a GPU without CUDA's libraries, a broken model
    file): the message says what, and the orchestrator exits 2."""


_CUDA_HINT = (
    "; Whisper on a GPU needs an NVIDIA driver, CUDA 12's cuBLAS and cuDNN 9 (faster-whisper's "
    "requirements), else run it with --asr-device cpu"
)


def make_transcriber(config: OrchestratorConfig) -> Transcriber:
    """Whisper as configured (blocking: loads the model, then decodes one second of quiet
    on every worker at once, so that a device that cannot run it fails here and not at
    a user's first turn, and that turn does not pay for the first pass: ~70 ms on a CPU)."""
    try:
        transcriber = Transcriber(
            config.asr_model_dir,
            device=config.asr_device,
            language=config.asr_language,
            workers=config.asr_workers,
            threads=config.asr_threads,
            window_step_s=config.asr_window_step_s,
            pad_s=config.asr_pad_s,
            repetition_penalty=config.asr_repetition_penalty,
        )
        quiet = np.random.default_rng(0).normal(0, 30, 16_000).astype(np.int16)
        with ThreadPoolExecutor(transcriber.workers) as pool:
            list(pool.map(transcriber.transcribe, [quiet] * transcriber.workers))
    except RuntimeError as exc:  # CTranslate2's: CUDA, cuBLAS, cuDNN, the model file
        hint = _CUDA_HINT if config.asr_device == "cuda" else ""
        message = f"asr_device: Whisper cannot run on {config.asr_device}: {exc}{hint}"
        raise AsrUnavailable(message.replace("\n", " ")) from None
    return transcriber


def speech_classifier(config: OrchestratorConfig) -> Callable[[], FrameClassifier]:
    """A factory of per-stream VAD classifiers (blocking for Silero: loads the model once)."""
    if config.vad == "silero":
        return SileroModel(threshold=config.silero_threshold).classifier
    return partial(WebRtcClassifier, config.vad_aggressiveness)


def busy_gap_frames(config: OrchestratorConfig) -> int:
    """The busy gap in 20 ms frames: none without speculation, never before the first."""
    if not config.speculate_ms or not config.speculate_busy_ms:
        return 0
    return max(config.speculate_ms, config.speculate_busy_ms) // 20


def end_of_turn(config: OrchestratorConfig) -> EndOfTurn:
    return EndOfTurn(
        config.end_of_turn,
        threshold=config.smart_turn_threshold,
        sure_unfinished=config.end_of_turn_question_sure_unfinished,
        question_end=config.end_of_turn_question_end,
        last_word_min_s=config.end_of_turn_last_word_ms / 1000,
        statement_end=config.end_of_turn_statement_end,
        pitch_rise_st=config.end_of_turn_pitch_rise_st,
        pitch_first_fall_st=config.end_of_turn_pitch_first_fall_st,
        unmarked_sure=config.end_of_turn_unmarked_sure,
    )


def build_app(
    config: OrchestratorConfig, transcriber: Transcriber | None = None
) -> web.Application:
    middlewares: list[Middleware] = [_origin_middleware(config.allowed_origins)]
    if not config.dev:
        middlewares.append(_key_middleware(config.api_key))
    app = web.Application(middlewares=middlewares)
    offer_only(config.rtc_hosts)
    rtc_http.setup(app, rtc_settings(config))

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        # gRPC channels bind to the running loop: create them here, not at import.
        registry = make_registry(config)
        app[REGISTRY] = registry
        metrics.report_workers(registry.snapshot)
        asr = (
            transcriber
            if transcriber is not None
            else await asyncio.to_thread(make_transcriber, config)
        )
        policy = end_of_turn(config)
        turn_model = (
            await asyncio.to_thread(SmartTurn, config.smart_turn_model)
            if policy.uses_smart_turn
            else None
        )
        if policy.pitch_rise_st > 0:
            await asyncio.to_thread(prosody.warm_up)
        classifier = await asyncio.to_thread(speech_classifier, config)
        await registry.refresh()
        if not any(w.healthy for w in registry.snapshot()):
            log.warning(
                "no TTS worker is reachable yet: replies fail with no_worker until one is",
                extra={"event": "no_worker", "registry": config.registry},
            )
        app[SERVICES] = Services(
            registry=registry,
            transcriber=asr,
            llm=make_llm(config),
            default_model=config.default_model,
            classifier=classifier,
            onset_frames=max(1, config.speech_onset_ms() // 20),
            sound_hold_max_s=config.speech_onset_ms() / 1000 + 0.1,
            end_frames=max(2, config.turn_silence_ms(judged=policy.mode != "silence") // 20),
            pause_frames=max(1, config.end_of_turn_pause_ms // 20),
            doubt_frames=max(1, config.end_of_turn_doubt_ms // 20),
            statement_doubt_frames=max(1, config.end_of_turn_statement_doubt_ms // 20),
            patience_turns=config.end_of_turn_patience_turns,
            patience_from_pauses=config.end_of_turn_patience_from == "pauses",
            patience_max_frames=config.end_of_turn_patience_max_ms // 20,
            unfinished_frames=config.end_of_turn_unfinished_ms // 20,
            gap_frames=config.speculate_ms // 20,
            busy_gap_frames=busy_gap_frames(config),
            backchannels_resume=config.barge_in_backchannels == "resume",
            end_of_turn=policy,
            smart_turn=turn_model,
            history_chars=config.llm_history_chars,
            stall_s=config.stall_ms / 1000,
            probe_timeout_s=config.probe_timeout_ms / 1000,
        )
        poller = asyncio.create_task(registry.run())
        yield
        poller.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await poller
        await registry.close()

    app.cleanup_ctx.append(lifecycle)

    async def ws(request: web.Request) -> web.StreamResponse:
        return await websocket.handle(request, request.app[SERVICES])

    async def models(request: web.Request) -> web.StreamResponse:
        registry = request.app[REGISTRY]
        return web.json_response({"models": registry.models(), "default": config.default_model})

    async def healthz(request: web.Request) -> web.StreamResponse:
        workers = request.app[REGISTRY].snapshot()
        healthy = [w.worker_id for w in workers if w.healthy]
        status = 200 if healthy else 503
        return web.json_response(
            {
                "status": "ok" if healthy else "no healthy worker",
                "workers": healthy,
                "dev": config.dev,
            },
            status=status,
        )

    async def prometheus(request: web.Request) -> web.StreamResponse:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    def static(name: str, content_type: str) -> Handler:
        async def serve(request: web.Request) -> web.StreamResponse:
            return web.Response(body=(WEB / name).read_bytes(), content_type=content_type)

        return serve

    app.router.add_get("/", static("index.html", "text/html"))
    app.router.add_get("/app.js", static("app.js", "application/javascript"))
    app.router.add_get("/lab", static("lab.html", "text/html"))
    app.router.add_get("/lab.js", static("lab.js", "application/javascript"))
    lab.setup(app)
    app.router.add_get(
        "/capture-worklet.js", static("capture-worklet.js", "application/javascript")
    )
    app.router.add_get("/ws", ws)
    app.router.add_get("/api/models", models)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", prometheus)
    return app
