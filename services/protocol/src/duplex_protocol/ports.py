"""Listening on ports: one that cannot be had is a ``PortUnavailable`` naming it.

A port already taken (a second stack, two workers on one host, a stale
process) used to end each service with a traceback: asyncio's and
prometheus-client's ``OSError``, and grpcio's ``RuntimeError`` (where older
versions returned 0, which the checks expected). Each service now says which
port, for what, and why, in one line, and exits 1.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

ADDRESS_ERRNOS = frozenset({errno.EADDRINUSE, errno.EADDRNOTAVAIL})
"""What only a bind fails with: a port in use, an address not this host's."""


class PortUnavailable(Exception):
    """A port this process must listen on cannot be had; the message says which and why."""


def _unavailable(what: str, address: str, reason: str) -> PortUnavailable:
    return PortUnavailable(f"cannot listen on {address} for {what}: {reason}")


@contextmanager
def binding(what: str, address: str, only: frozenset[int] | None = None) -> Iterator[None]:
    """Around the call that binds ``address``: its ``OSError`` (with an errno in
    ``only``, when given: for a call that does more than bind) is a ``PortUnavailable``."""
    try:
        yield
    except OSError as exc:
        if exc.errno is None or (only is not None and exc.errno not in only):
            raise
        raise _unavailable(what, address, os.strerror(exc.errno).lower()) from None


def bind_grpc(add_port: Callable[[str], int], address: str, what: str) -> int:
    """``add_port(address)`` of a gRPC server; the port bound, or ``PortUnavailable``."""
    try:
        port = add_port(address)
    except RuntimeError:  # grpcio 1.5x raises "Failed to bind" where it returned 0
        port = 0
    if port == 0:
        raise _unavailable(what, address, "the port is in use or the address is not this host's")
    return port
