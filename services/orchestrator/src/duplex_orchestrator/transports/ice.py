"""ICE address policy for the WebRTC transport (pure, but ``offer_only``).

A deployment may restrict which of its addresses WebRTC uses (``--rtc-host``):
a pod's own IP, or 127.0.0.1 for a machine that must send nothing past
loopback (the tests). ``allowed_sdp`` drops the peer's candidates that point
elsewhere (and mDNS ``.local`` names, which would need multicast to resolve),
so no packet is sent to them; ``offer_only`` makes aioice gather host
candidates on the given addresses only.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable


def candidate_address(line: str) -> str:
    """The connection address of an SDP ``a=candidate:`` line ('' if malformed)."""
    parts = line.split()
    return parts[4] if len(parts) >= 8 else ""


def address_allowed(address: str, allowed: Iterable[str]) -> bool:
    """``allowed``: addresses or networks (``10.0.0.0/8``); empty allows any real address."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False  # an mDNS name (xxxx.local) or garbage: never resolved
    nets = [ipaddress.ip_network(a, strict=False) for a in allowed]
    return not nets or any(ip in net for net in nets)


def allowed_sdp(sdp: str, allowed: Iterable[str]) -> str:
    """The SDP with every candidate line whose address is not allowed removed."""
    allowed = list(allowed)
    lines = sdp.splitlines()
    kept = [
        line
        for line in lines
        if not line.startswith("a=candidate:") or address_allowed(candidate_address(line), allowed)
    ]
    return "\r\n".join(kept) + "\r\n"


def offer_only(addresses: list[str]) -> None:
    """Make aioice gather host candidates on ``addresses`` only (process-wide).

    aioice has no setting for this and skips 127.0.0.1 on its own, so its
    address lookup is replaced; with no addresses, its own lookup stays.
    """
    if not addresses:
        return
    import aioice.ice

    chosen = list(addresses)

    def host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in chosen if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    aioice.ice.get_host_addresses = host_addresses
