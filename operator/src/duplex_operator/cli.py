"""``duplex-operator``: the kopf operator with metrics on :9102 and a liveness endpoint."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

import kopf
from prometheus_client import start_http_server

from duplex_operator.handlers import build_registry
from duplex_protocol.kube import KubeConfig
from duplex_protocol.logs import setup_logging


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="duplex-operator", description="duplex operator: TTSWorker and VoiceModel."
    )
    p.add_argument(
        "--namespace", action="append", help="watch only these namespaces (default: all)"
    )
    p.add_argument("--metrics-port", type=int, default=9102)
    p.add_argument("--liveness", default="http://0.0.0.0:8080/healthz")
    p.add_argument(
        "--standalone",
        action="store_true",
        help="no peering (a single replica); by default replicas coordinate through kopf peering",
    )
    args = p.parse_args(argv)
    setup_logging("INFO")
    config = KubeConfig.detect()
    if config is None:
        print(
            "duplex-operator: no cluster found: run in a pod, or set DUPLEX_KUBE_URL",
            file=sys.stderr,
        )
        raise SystemExit(2)
    if args.metrics_port:
        start_http_server(args.metrics_port)
    logging.getLogger("kopf").setLevel(logging.INFO)
    asyncio.run(
        kopf.operator(
            registry=build_registry(config),
            clusterwide=not args.namespace,
            namespaces=args.namespace or (),
            standalone=args.standalone,
            peering_name="duplex",
            liveness_endpoint=args.liveness,
        )
    )
