"""Which addresses a node advertises: ones other nodes can dial, never a wildcard (pure).

A socket listening on ``0.0.0.0`` or ``::`` (a *wildcard*) accepts
connections on every address of the machine, but ``/ip4/0.0.0.0/tcp/7447``
means nothing to a peer elsewhere. What a node puts in identify, in its
Kademlia answers and in its hellos is chosen here, from plain strings:

1. ``announce`` set by the operator (a public address, a port forward, a
   DNS name): exactly those addresses, nothing else.
2. Otherwise each listen address: a specific IP as it is; a wildcard
   replaced by every interface address of its family a peer could dial —
   not link-local (it needs a scope id), multicast or unspecified. Loopback
   only when the node has no other address at all (a machine, or a network
   namespace, with nothing but ``lo``): a peer elsewhere cannot use it, and a
   peer on the same machine reaches the node on its other addresses too.
3. Then observed addresses (what peers see this node as, in identify) that
   enough distinct peers agree on (the caller passes only those), if their
   port is one the node listens on: a 1:1 NAT (a cloud VM's public IP) or a
   port forwarded to the same port. An observed outbound port is ephemeral
   and never dialable, so it is never advertised.
4. Ordered so that a dialer taking the first usable address (py-libp2p
   dials one TCP address per peer) takes the most widely reachable one:
   global before private before loopback, IPv4 before IPv6. No duplicates,
   never a wildcard, never port 0.

Addresses are multiaddr strings without ``/p2p/...`` (the transport adds its
own peer id).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import Final

__all__ = ["advertised", "announce_error", "is_dialable", "is_wildcard"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_IP_PROTOCOLS: Final = {"ip4": 4, "ip6": 6}
_DNS_PROTOCOLS: Final = frozenset({"dns", "dns4", "dns6"})


def _parts(addr: str) -> list[str]:
    return addr.strip("/").split("/") if addr.startswith("/") else []


def _ip_tcp(addr: str) -> tuple[IPAddress, int] | None:
    """The IP and TCP port of ``/ip4|ip6/IP/tcp/PORT[/...]``, or None for any other form."""
    parts = _parts(addr)
    if len(parts) < 4 or parts[0] not in _IP_PROTOCOLS or parts[2] != "tcp":
        return None
    try:
        ip = ipaddress.ip_address(parts[1])
        port = int(parts[3])
    except ValueError:
        return None
    if ip.version != _IP_PROTOCOLS[parts[0]] or not 0 <= port <= 65_535:
        return None
    return ip, port


def _tcp_text(ip: IPAddress, port: int) -> str:
    return f"/ip{ip.version}/{ip}/tcp/{port}"


def is_wildcard(addr: str) -> bool:
    """True for an IP multiaddr on the unspecified address (``0.0.0.0``, ``::``)."""
    parsed = _ip_tcp(addr)
    return parsed is not None and parsed[0].is_unspecified


def is_dialable(addr: str) -> bool:
    """False for an address nobody can dial: a wildcard IP, a multicast IP, or TCP port 0.

    Anything this module cannot read (another transport, say) is left to the
    dialer: True.
    """
    parsed = _ip_tcp(addr)
    if parsed is None:
        return True
    ip, port = parsed
    return port != 0 and not ip.is_unspecified and not ip.is_multicast


def announce_error(addr: str) -> str | None:
    """Why ``addr`` cannot be announced (None if it can).

    An announced address is ``/ip4/IP/tcp/PORT``, ``/ip6/IP/tcp/PORT`` or
    ``/dns4|dns6|dns/NAME/tcp/PORT``: an address and a port peers dial, so
    not a wildcard and not port 0; no ``/p2p/`` (the node adds its own).
    """
    parts = _parts(addr)
    if len(parts) != 4 or parts[2] != "tcp":
        return f"{addr!r} is not /ip4|ip6|dns4|dns6/HOST/tcp/PORT"
    if parts[0] in _DNS_PROTOCOLS:
        if not parts[1] or not parts[3].isdigit() or not 0 < int(parts[3]) <= 65_535:
            return f"{addr!r} does not name a host and a port"
        return None
    parsed = _ip_tcp(addr)
    if parsed is None:
        return f"{addr!r} is not /ip4|ip6|dns4|dns6/HOST/tcp/PORT"
    if not is_dialable(addr):
        return f"{addr!r} is not an address peers can dial (a wildcard, multicast or port 0)"
    return None


def _rank(ip: IPAddress) -> tuple[int, int]:
    """Most widely reachable first: global, then private (and the rest), then loopback; v4 first."""
    scope = 2 if ip.is_loopback else 0 if ip.is_global else 1
    return scope, ip.version


def _usable_interface_ip(ip: IPAddress) -> bool:
    return not (ip.is_unspecified or ip.is_multicast or ip.is_link_local)


def _parse_ips(texts: Iterable[str]) -> list[IPAddress]:
    ips = []
    for text in texts:
        try:
            ips.append(ipaddress.ip_address(text.split("%", 1)[0]))  # an IPv6 zone is not ours
        except ValueError:
            continue
    return ips


def advertised(
    listening: Sequence[str],
    interfaces: Sequence[str],
    *,
    announce: Sequence[str] = (),
    observed: Sequence[str] = (),
) -> list[str]:
    """The addresses to advertise (see the module docstring for the rules).

    ``listening``: the transport's bound addresses (their real ports);
    ``interfaces``: the machine's IP addresses; ``announce``: the operator's
    setting; ``observed``: observed addresses enough peers agree on.
    """
    if announce:
        return list(dict.fromkeys(announce))
    ips = _parse_ips(interfaces)
    found: list[tuple[IPAddress, int]] = []
    ports: set[int] = set()
    for addr in listening:
        parsed = _ip_tcp(addr)
        if parsed is None:
            continue
        ip, port = parsed
        if port == 0:
            continue
        ports.add(port)
        if not ip.is_unspecified:
            found.append((ip, port))
            continue
        found += [
            (own, port) for own in ips if own.version == ip.version and _usable_interface_ip(own)
        ]
    for addr in observed:
        parsed = _ip_tcp(addr)
        if parsed is not None and parsed[1] in ports and _usable_interface_ip(parsed[0]):
            found.append(parsed)
    if any(not ip.is_loopback for ip, _port in found):
        found = [(ip, port) for ip, port in found if not ip.is_loopback]
    ordered = sorted(dict.fromkeys(found), key=lambda item: _rank(item[0]))
    return [_tcp_text(ip, port) for ip, port in ordered]
