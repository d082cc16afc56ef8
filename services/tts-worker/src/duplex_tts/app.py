"""Worker process wiring: gRPC server, health, metrics, model manager, sweeper, shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from prometheus_client import start_http_server

from duplex_protocol.kube import KubeClient, KubeConfig, KubeError
from duplex_protocol.ports import PortUnavailable, bind_grpc, binding
from duplex_protocol.tts.v1 import tts_pb2_grpc as pb_grpc
from duplex_protocol.wire import WireConfigError, WireSecurity
from duplex_tts.adapters import FamilyNotInstalled, check_installed, get_family
from duplex_tts.catalog import Catalog, load_catalog
from duplex_tts.config import WorkerConfig
from duplex_tts.decoding import TolerantDecoding
from duplex_tts.eviction import EvictionPolicy
from duplex_tts.lease import LeaseWriter
from duplex_tts.manager import ModelError, ModelManager
from duplex_tts.scheduler import Executors
from duplex_tts.server import TTSServicer

log = logging.getLogger(__name__)

SERVICE_NAME = "duplex.tts.v1.TTS"


class StartupError(Exception):
    """The worker cannot become ready (bad default model, port in use, ...)."""


def catalog_loader(config: WorkerConfig) -> Catalog:
    return load_catalog(config.voicepacks, set(config.adapters))


async def serve(config: WorkerConfig) -> None:
    """Run until SIGINT/SIGTERM. Health is NOT_SERVING until the default model is warm."""
    try:
        check_installed(config.adapters)
    except FamilyNotInstalled as exc:
        raise StartupError(str(exc)) from None
    try:
        security = WireSecurity.load(
            token_file=config.grpc_token_file,
            cert_file=config.tls_cert,
            key_file=config.tls_key,
            ca_file=config.tls_ca,
        )
    except WireConfigError as exc:
        raise StartupError(str(exc)) from None
    catalog = catalog_loader(config)
    for model_id in [config.default_model, *config.preload_models]:
        if catalog.get(model_id) is None:
            raise StartupError(
                f"model {model_id!r} is not in the catalog at {config.voicepacks} "
                f"for adapters {config.adapters} (found: {', '.join(catalog.models) or 'none'})"
            )
    executors = Executors(config.synth_threads)
    manager = ModelManager(
        catalog,
        EvictionPolicy(config.ttl_s, config.min_residency_s, config.resident_cap),
        max_parallel_loads=config.max_parallel_loads,
        device=config.device,
        executors=executors,
        family_loader=lambda name: get_family(name, cache_dir=config.cache_dir),
    )
    servicer = TTSServicer(config, manager, lambda: catalog_loader(config))
    health_servicer = health.aio.HealthServicer()
    server = grpc.aio.server(
        options=[("grpc.so_reuseport", 0)],
        interceptors=[*security.interceptors(), TolerantDecoding()],
    )
    pb_grpc.add_TTSServicer_to_server(servicer, server)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for service in ("", SERVICE_NAME):
        await health_servicer.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
    address = f"{config.host}:{config.port}"
    probes: grpc.aio.Server | None = None
    if config.health_port:  # health only, plaintext: kubelet probes cannot speak TLS
        probes = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, probes)
    try:
        if config.metrics_port:  # first: a thread, nothing to undo if a later port is taken
            with binding("Prometheus metrics", f"0.0.0.0:{config.metrics_port}"):
                start_http_server(config.metrics_port)
        bind_grpc(lambda at: security.add_port(server, at), address, "the worker's gRPC")
        if probes is not None:
            health_address = f"{config.host}:{config.health_port}"
            bind_grpc(probes.add_insecure_port, health_address, "gRPC health probes")
    except PortUnavailable as exc:
        for unstarted in (server, probes):  # else collected after the loop, with warnings
            if unstarted is not None:
                await unstarted.stop(None)
        raise StartupError(str(exc)) from None
    await server.start()
    if probes is not None:
        await probes.start()
    log.info(
        "worker listening",
        extra={
            "event": "listening",
            "address": address,
            "metrics_port": config.metrics_port,
            "worker_id": config.worker_id,
            "tls": security.tls,
            "token": bool(security.token),
        },
    )
    if security.plaintext and config.host not in ("127.0.0.1", "::1", "localhost"):
        log.warning(
            "worker gRPC is plaintext without a token on a non-loopback address: "
            "anyone who reaches it can use or unload its models "
            "(set --grpc-token-file and --tls-cert/--tls-key/--tls-ca)",
            extra={"event": "insecure", "address": address},
        )

    stop = asyncio.Event()
    signals: list[signal.Signals] = []

    def on_signal(sig: signal.Signals) -> None:
        signals.append(sig)
        stop.set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)

    # Made before serving: a cluster's client is imported now, not on the loop once
    # sessions may come (about a second on a small CPU).
    lease = _lease_writer(config, servicer)
    try:
        try:
            await manager.load(config.default_model, keep=True)
            await asyncio.gather(*(manager.load(m, pin=True) for m in config.preload_models))
        except ModelError as exc:
            raise StartupError(str(exc)) from exc
        for service in ("", SERVICE_NAME):
            await health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
        log.info("worker ready", extra={"event": "ready", "resident": manager.resident_ids()})
        background = [
            asyncio.create_task(manager.run_sweeper()),
            asyncio.create_task(_reap_idle_sessions(servicer)),
        ]
        if lease is not None:
            background.append(asyncio.create_task(lease.run()))
        await stop.wait()
        if signals[:1] == [signal.SIGTERM] and config.drain_timeout_s > 0:
            await _drain(servicer, health_servicer, lease, config.drain_timeout_s)
        log.info("worker stopping", extra={"event": "stopping"})
        for task in background:
            task.cancel()
        if lease is not None:
            await lease.release()
    finally:
        await health_servicer.enter_graceful_shutdown()
        servicer.sessions.end_all("shutdown")
        servicer.idle.close()
        await server.stop(grace=2.0)
        if probes is not None:
            await probes.stop(grace=None)
        await manager.close()
        executors.shutdown()


async def _drain(
    servicer: TTSServicer,
    health_servicer: health.aio.HealthServicer,
    lease: LeaseWriter | None,
    timeout_s: float,
) -> None:
    """Stop taking sessions, say so at once (health, Lease), and let the open ones finish.

    A scaled-down or rolled pod gets SIGTERM: the orchestrator stops routing
    to it on the Lease's ``ready: false``, and conversations under way end on
    their own instead of being cut, up to ``timeout_s``.
    """
    servicer.draining = True
    await health_servicer.enter_graceful_shutdown()
    if lease is not None:
        with contextlib.suppress(TimeoutError, KubeError, OSError):
            await lease.renew()
    open_sessions = len(servicer.sessions)
    log.info("worker draining", extra={"event": "draining", "sessions": open_sessions})
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(servicer.sessions.emptied(), timeout_s)
    log.info(
        "worker drained",
        extra={"event": "drained", "sessions_left": len(servicer.sessions)},
    )


def _lease_writer(config: WorkerConfig, servicer: TTSServicer) -> LeaseWriter | None:
    """A Lease writer when running in a cluster (pod identity from the downward API)."""
    kube = KubeConfig.detect()
    pod, namespace = os.environ.get("POD_NAME"), os.environ.get("POD_NAMESPACE")
    if kube is None or not pod or not namespace:
        return None
    host = os.environ.get("POD_IP") or config.host
    return LeaseWriter(
        KubeClient(kube),
        pod=pod,
        pod_uid=os.environ.get("POD_UID", ""),
        namespace=namespace,
        pool=os.environ.get("DUPLEX_POOL", ""),
        endpoint=f"{host}:{config.port}",
        state=servicer.worker_state,
    )


async def _reap_idle_sessions(servicer: TTSServicer, every_s: float = 5.0) -> None:
    while True:
        await asyncio.sleep(every_s)
        servicer.end_idle_sessions()
