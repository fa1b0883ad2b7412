"""This machine's addresses, as the components that advertise one need them (the API server's
advertise address, the node agent's InternalIP)."""

from __future__ import annotations

import socket


def default_route_ip(family: int) -> str:
    """The address the machine would use to reach the outside, for ``socket.AF_INET`` or
    ``AF_INET6`` ("" without such a route). No packet is sent: a UDP socket's connect only picks
    a route (to a documentation address)."""
    target = "192.0.2.1" if family == socket.AF_INET else "2001:db8::1"
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.connect((target, 9))
            return str(s.getsockname()[0])
    except OSError:
        return ""
