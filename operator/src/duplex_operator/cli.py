"""``duplex-operator``: the kopf operator behind a leader Lease, metrics on :9102, /healthz.

Every replica serves ``/healthz`` and waits for the lead; only the leader runs
the kopf handlers (standalone: the Lease, not kopf peering, keeps replicas
apart). A leader that loses its Lease stops and exits 1, so its pod restarts
as a follower, as controller-runtime managers do. On SIGTERM the leader
releases the Lease once kopf has stopped (a few seconds), so a rolling update
hands over without waiting the Lease out. ``DUPLEX_KOPF_LOG=DEBUG`` shows
kopf's own decisions.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys

import kopf
from aiohttp import web
from prometheus_client import start_http_server

from duplex_operator.builders import WorkerWire
from duplex_operator.election import LeaderElector
from duplex_operator.handlers import build_registry
from duplex_operator.images import worker_images
from duplex_operator.leadership import LEADER_LEASE, LEASE_DURATION_S
from duplex_protocol.kube import KubeConfig, KubeConfigError
from duplex_protocol.logs import setup_logging
from duplex_protocol.ports import PortUnavailable, binding
from duplex_protocol.wire import WireConfigError, WireSecurity

log = logging.getLogger("duplex_operator")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="duplex-operator", description="duplex operator: TTSWorker and VoiceModel."
    )
    p.add_argument(
        "--namespace",
        action="append",
        help="a namespace to watch (repeatable; default: its own, $POD_NAMESPACE)",
    )
    p.add_argument(
        "--all-namespaces",
        action="store_true",
        help="watch every namespace (needs cluster-wide RBAC: opt in)",
    )
    p.add_argument(
        "--metrics-port", type=int, default=9102, help="Prometheus port (default 9102; 0: none)"
    )
    p.add_argument(
        "--health-port", type=int, default=8080, help="port of /healthz for probes (default 8080)"
    )
    p.add_argument(
        "--standalone",
        action="store_true",
        help="no leader election: only for a single operator run by hand",
    )
    p.add_argument(
        "--identity",
        default=os.environ.get("POD_NAME") or socket.gethostname(),
        help="this replica's name in the leader Lease (default: $POD_NAME, else the hostname)",
    )
    p.add_argument(
        "--lease-namespace",
        default=os.environ.get("POD_NAMESPACE") or "default",
        help="namespace of the leader Lease (default: $POD_NAMESPACE, else default)",
    )
    p.add_argument(
        "--lease-name", default=LEADER_LEASE, help=f"the leader Lease (default {LEADER_LEASE})"
    )
    p.add_argument(
        "--lease-duration-s",
        type=int,
        default=LEASE_DURATION_S,
        help="a leader silent this long is replaced; it renews every third of it",
    )
    p.add_argument(
        "--kubeconfig",
        default="",
        help="kubeconfig file(s), ':'-separated (default: $DUPLEX_KUBE_URL, $KUBECONFIG, "
        "the pod's service account, then ~/.kube/config)",
    )
    p.add_argument(
        "--context", default="", help="kubeconfig context to use (default: its current-context)"
    )
    p.add_argument(
        "--reconcile-every-s",
        type=float,
        default=3.0,
        help="how often pools and voices are reconciled besides events (default 3)",
    )
    return p


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = parser()
    args = p.parse_args(argv)
    if args.all_namespaces and args.namespace:
        p.error("--all-namespaces and --namespace exclude each other")
    if not args.all_namespaces and not args.namespace:
        args.namespace = [os.environ.get("POD_NAMESPACE") or "default"]
    if args.lease_duration_s < 3:
        p.error("--lease-duration-s must be at least 3")
    return args


async def serve_health(port: int, elector: LeaderElector | None) -> web.AppRunner:
    async def healthz(_: web.Request) -> web.Response:
        leading = elector is None or elector.leading
        return web.json_response({"ok": True, "leader": leading})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        with binding("health probes", f"0.0.0.0:{port}"):
            await web.TCPSite(runner, "0.0.0.0", port).start()
    except PortUnavailable:
        await runner.cleanup()
        raise
    return runner


async def run(args: argparse.Namespace, config: KubeConfig) -> int:
    """Wait for the lead, reconcile until stopped or the lead is lost; the exit code."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    elector = None
    if not args.standalone:
        elector = LeaderElector(
            config,
            args.lease_namespace,
            args.identity,
            name=args.lease_name,
            duration_s=args.lease_duration_s,
            renew_every_s=args.lease_duration_s / 3,
        )
    health = None
    lost = False
    try:  # the health port first, inside: a port in use still closes the elector's client
        health = await serve_health(args.health_port, elector) if args.health_port else None
        if elector is not None:
            waiting = asyncio.create_task(elector.acquire())
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not waiting.done():
                waiting.cancel()
                return 0
            stopping.cancel()
        holding = asyncio.create_task(elector.hold()) if elector else None
        if holding is not None:
            holding.add_done_callback(lambda _: stop.set())
        await kopf.operator(
            registry=build_registry(
                config,
                reconcile_every_s=args.reconcile_every_s,
                images=worker_images(os.environ.get("DUPLEX_WORKER_IMAGES", "")),
                wire=WorkerWire.from_json(os.environ.get("DUPLEX_WORKER_WIRE", "")),
            ),
            clusterwide=args.all_namespaces,
            namespaces=args.namespace or (),
            standalone=True,
            stop_flag=stop,
        )
        if holding is not None:
            lost = holding.done() and not holding.cancelled()
            holding.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await holding
    finally:
        if elector is not None and not lost:
            await elector.release()
        if elector is not None:
            await elector.close()
        if health is not None:
            await health.cleanup()
    if lost:
        log.error("lost the leader Lease: exiting so the pod restarts as a follower")
        return 1
    return 0


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    setup_logging("INFO")
    config = KubeConfig.detect(args.kubeconfig, args.context)
    if config is None:
        print(
            "duplex-operator: no cluster found: run in a pod, or give a kubeconfig "
            "(--kubeconfig, $KUBECONFIG or ~/.kube/config), or set DUPLEX_KUBE_URL",
            file=sys.stderr,
        )
        raise SystemExit(2)
    try:  # a missing context or a broken file: say so now, in one line
        asyncio.run(config.configuration())
    except KubeConfigError as exc:
        print(f"duplex-operator: cannot use the cluster: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    try:
        WireSecurity.load()  # a bad TLS/token file: say so now, not at the first load
    except WireConfigError as exc:
        print(f"duplex-operator: invalid configuration: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    logging.getLogger("kopf").setLevel(os.environ.get("DUPLEX_KOPF_LOG", "INFO"))
    try:
        if args.metrics_port:
            with binding("Prometheus metrics", f"0.0.0.0:{args.metrics_port}"):
                start_http_server(args.metrics_port)
        code = asyncio.run(run(args, config))
    except PortUnavailable as exc:
        print(f"duplex-operator: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    raise SystemExit(code)
