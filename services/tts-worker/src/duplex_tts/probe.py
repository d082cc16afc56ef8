"""``python -m duplex_tts.probe [HOST:PORT]``: exit 0 once the worker's gRPC health says SERVING.

For container health checks (compose, a Docker ``HEALTHCHECK``) where no
``grpc_health_probe`` binary is installed. The worker answers NOT_SERVING until
its default model is loaded and warm. Plaintext only: with mutual TLS on, point
it at the worker's ``--health-port``.
"""

from __future__ import annotations

import argparse
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def serving(address: str, timeout_s: float = 3.0) -> bool:
    """True when the worker at ``address`` reports SERVING within ``timeout_s``."""
    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=timeout_s
            )
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m duplex_tts.probe",
        description="Exit 0 when a duplex TTS worker is ready (gRPC health SERVING), else 1.",
    )
    parser.add_argument(
        "address", nargs="?", default="127.0.0.1:7001", help="worker HOST:PORT (127.0.0.1:7001)"
    )
    parser.add_argument(
        "--timeout-s", type=float, default=3.0, help="seconds to wait for an answer (3)"
    )
    args = parser.parse_args(argv)
    if serving(args.address, args.timeout_s):
        return 0
    print(f"duplex-tts-worker at {args.address} is not serving", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
