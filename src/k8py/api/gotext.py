"""Go's text forms that kube writes and k8py writes the same way: one home.

``go_duration`` is Go's ``time.Duration.String()`` (``850ns``, ``1.5ms``, ``2.5s``, ``1m30s``,
``5m0s``, ``1h2m3.5s``), which shows in kubelet's back-off messages, kube-apiserver's request log,
gRPC probe errors, ``metav1.Duration`` fields (metrics-server's ``window``) and protobuf's
duration fields.
"""

from __future__ import annotations

__all__ = ["go_duration", "go_duration_ns"]


def go_duration(seconds: float) -> str:
    """Go's ``time.Duration.String()`` of ``seconds`` (rounded to the nanosecond)."""
    return go_duration_ns(round(seconds * 1e9))


def go_duration_ns(ns: int) -> str:
    """Go's ``time.Duration.String()`` of ``ns`` nanoseconds."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1_000:
        return f"{sign}{ns}ns"
    if ns < 1_000_000:
        return f"{sign}{_frac(ns, 1_000)}µs"
    if ns < 1_000_000_000:
        return f"{sign}{_frac(ns, 1_000_000)}ms"
    h, rest = divmod(ns, 3_600 * 10**9)
    m, rest = divmod(rest, 60 * 10**9)
    out = f"{h}h" if h else ""
    if h or m:
        out += f"{m}m"
    return f"{sign}{out}{_frac(rest, 10**9)}s"


def _frac(n: int, unit: int) -> str:
    whole, part = divmod(n, unit)
    if not part:
        return str(whole)
    digits = len(str(unit)) - 1
    return f"{whole}.{part:0{digits}d}".rstrip("0")
