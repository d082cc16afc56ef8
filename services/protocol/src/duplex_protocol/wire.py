"""Securing worker gRPC traffic: mutual TLS and/or a shared token, the same for every peer.

Workers serve, the orchestrator and the operator call; all three read the
same settings (``DUPLEX_GRPC_*`` variables, or flags that override them):

- ``DUPLEX_GRPC_TOKEN_FILE``: a file holding a shared token. Clients send it
  as ``authorization: Bearer TOKEN`` on every call; workers refuse calls
  without it (UNAUTHENTICATED). ``DUPLEX_GRPC_TOKEN`` works too (a file
  keeps it out of ``ps`` and the pod spec).
- ``DUPLEX_GRPC_TLS_CERT`` / ``_KEY`` / ``_CA``: PEM files. A worker with all
  three serves TLS and requires a client certificate signed by the CA
  (mutual TLS); a client with them verifies the worker against the CA and
  presents its own certificate. ``DUPLEX_GRPC_TLS_SERVER_NAME`` is the name
  the worker certificate is issued to (default ``duplex-tts-worker``): pod IPs
  change, so clients check that name rather than the address they dial.

Nothing set means plaintext without a token, which ``duplex up`` uses on
loopback only (and says so).
"""

from __future__ import annotations

import hmac
import os
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

DEFAULT_SERVER_NAME = "duplex-tts-worker"
_OPEN_METHODS = ("/grpc.health.v1.Health/",)
"""Kubelet's gRPC probes send no token: health stays open (it reveals nothing)."""


class WireConfigError(Exception):
    """A TLS or token file that cannot be used; the message names it."""


@dataclass(frozen=True)
class WireSecurity:
    token: str = ""
    cert: bytes | None = None
    key: bytes | None = None
    ca: bytes | None = None
    server_name: str = DEFAULT_SERVER_NAME

    @property
    def tls(self) -> bool:
        return self.cert is not None

    @property
    def plaintext(self) -> bool:
        return not self.tls and not self.token

    @classmethod
    def load(
        cls,
        *,
        token_file: str | Path | None = None,
        cert_file: str | Path | None = None,
        key_file: str | Path | None = None,
        ca_file: str | Path | None = None,
        server_name: str = "",
        env: Mapping[str, str] | None = None,
    ) -> WireSecurity:
        """Settings from arguments, else ``DUPLEX_GRPC_*`` variables; files are read now."""
        env = os.environ if env is None else env
        token_file = token_file or env.get("DUPLEX_GRPC_TOKEN_FILE")
        token = _read(token_file, "token").decode().strip() if token_file else ""
        token = token or env.get("DUPLEX_GRPC_TOKEN", "").strip()
        paths = {
            "cert": cert_file or env.get("DUPLEX_GRPC_TLS_CERT"),
            "key": key_file or env.get("DUPLEX_GRPC_TLS_KEY"),
            "ca": ca_file or env.get("DUPLEX_GRPC_TLS_CA"),
        }
        given = [name for name, path in paths.items() if path]
        if given and len(given) != 3:
            missing = sorted(set(paths) - set(given))
            raise WireConfigError(
                f"TLS needs a certificate, its key and the CA together; missing: "
                f"{', '.join(missing)} (DUPLEX_GRPC_TLS_{'/'.join(m.upper() for m in missing)})"
            )
        pem = {name: _read(path, f"TLS {name}") for name, path in paths.items() if path}
        if given:
            _check_pem(*(str(paths[name]) for name in ("cert", "key", "ca")))
        return cls(
            token=token,
            cert=pem.get("cert"),
            key=pem.get("key"),
            ca=pem.get("ca"),
            server_name=server_name
            or env.get("DUPLEX_GRPC_TLS_SERVER_NAME", "")
            or DEFAULT_SERVER_NAME,
        )

    # ---- serving ---------------------------------------------------------

    def add_port(self, server: grpc.aio.Server, address: str) -> int:
        """Listen on ``address`` (mutual TLS when configured); the bound port, 0 on failure."""
        if not self.tls:
            return server.add_insecure_port(address)
        assert self.key is not None
        assert self.cert is not None
        credentials = grpc.ssl_server_credentials(
            [(self.key, self.cert)], root_certificates=self.ca, require_client_auth=True
        )
        return server.add_secure_port(address, credentials)

    def interceptors(self) -> list[grpc.aio.ServerInterceptor]:
        return [_TokenCheck(self.token)] if self.token else []

    # ---- calling ---------------------------------------------------------

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        """Metadata for every call (the token). Passed per call rather than by a client
        interceptor: grpc-aio's intercepted streams fail when the server ends first."""
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()

    def channel(self, endpoint: str, options: Sequence[tuple[str, Any]] = ()) -> grpc.aio.Channel:
        """A channel to a worker that presents this side's certificate (mutual TLS)."""
        if not self.tls:
            return grpc.aio.insecure_channel(endpoint, options)
        credentials = grpc.ssl_channel_credentials(self.ca, self.key, self.cert)
        named = [*options, ("grpc.ssl_target_name_override", self.server_name)]
        return grpc.aio.secure_channel(endpoint, credentials, named)


def _read(path: str | Path, what: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise WireConfigError(f"cannot read the {what} file {path}: {exc.strerror}") from None
    if not data.strip():
        raise WireConfigError(f"the {what} file {path} is empty")
    return data


def _check_pem(cert: str, key: str, ca: str) -> None:
    """Parse the TLS files now: grpcio takes any bytes, then fails at the bind as if the
    port were taken, or at each handshake, without saying which file is wrong."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:  # an encrypted key gets an empty password (grpcio cannot use one): no prompt
        context.load_cert_chain(cert, key, password=lambda: b"")
    except ssl.SSLError as exc:
        raise WireConfigError(
            f"TLS: {cert} and {key} are not a PEM certificate and its own unencrypted key "
            f"({_why(exc)})"
        ) from None
    try:
        context.load_verify_locations(cafile=ca)
    except ssl.SSLError as exc:
        raise WireConfigError(f"TLS: {ca} holds no PEM CA certificate ({_why(exc)})") from None


def _why(exc: ssl.SSLError) -> str:
    return str(exc.reason or exc.strerror or exc)


class _TokenCheck(grpc.aio.ServerInterceptor):
    """Refuses every call without ``authorization: Bearer <token>`` (health excepted)."""

    def __init__(self, token: str) -> None:
        self._expected = f"bearer {token}".encode()

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        method = handler_call_details.method or ""
        if method.startswith(_OPEN_METHODS):
            return await continuation(handler_call_details)
        given = ""
        for key, value in handler_call_details.invocation_metadata or ():
            if key == "authorization":
                given = value if isinstance(value, str) else value.decode(errors="replace")
        scheme, _, credential = given.strip().partition(" ")
        presented = f"{scheme.lower()} {credential.strip()}".encode()
        if hmac.compare_digest(presented, self._expected):
            return await continuation(handler_call_details)
        return _refusal(await continuation(handler_call_details))


def _refusal(
    handler: grpc.RpcMethodHandler[Any, Any] | None,
) -> grpc.RpcMethodHandler[Any, Any] | None:
    """A handler of the same shape that answers UNAUTHENTICATED."""
    message = "missing or wrong token: send 'authorization: Bearer TOKEN' (DUPLEX_GRPC_TOKEN_FILE)"

    async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    async def streaming(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)
        yield  # pragma: no cover - makes this an async generator

    shape = {
        "unary_unary": unary,
        "stream_unary": unary,
        "unary_stream": streaming,
        "stream_stream": streaming,
    }
    if handler is None:  # an unknown method: let gRPC answer UNIMPLEMENTED
        return None
    for kind, behaviour in shape.items():
        if getattr(handler, kind) is not None:
            return handler._replace(**{kind: behaviour})  # type: ignore[attr-defined, no-any-return]
    return handler
