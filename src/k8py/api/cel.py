"""CEL validation rules of CustomResourceDefinitions (``x-kubernetes-validations``): kube's
apiextensions-apiserver ``pkg/apiserver/schema/cel`` (compilation when a CRD is written,
evaluation on every write of a custom resource) on Google's cel-cpp, through its Python
binding ``cel-expr-python`` (docs/crd.md says why that one).

The binding is imported only when a schema carries rules (``_lib``), so an API server whose CRDs
have none never loads it.

Types. ``self`` is typed from the schema node as far as the binding allows without protobuf
messages: strings (``format: byte`` as bytes, as kube; ``duration``, ``date`` and
``date-time`` as durations and timestamps where ``self`` is the string itself, strings inside
objects and lists, where kube has durations and timestamps too), integers, numbers (double), booleans, lists
of the items' type, maps (``additionalProperties``) of the values' type. Objects with
``properties`` are string-keyed maps of ``dyn`` values, so ``self.field`` selects,
``has(self.field)`` tests presence and an absent field is kube's ``no such key`` error; a field
the schema does not have is kube's compile error ``undefined field`` (``_undefined_fields`` walks
the checked expression with the schema). int-or-string, preserve-unknown-fields and nullable
nodes are ``dyn``. Property names are escaped as kube does (``__namespace__``, ``a__dash__b``).

Libraries: CEL's standard functions and macros, ``cel.bind``, ``math.greatest/least``, optional
values (``self.?x``, ``optional.of``), kube's strings (``charAt``, ``indexOf``, ``lastIndexOf``,
``lowerAscii``, ``upperAscii``, ``replace``, ``split``, ``substring``, ``trim``, ``join``,
``reverse``, ``format``), lists (``isSorted``, ``sum``, ``min``, ``max``, ``indexOf``, ``lastIndexOf``),
sets (``sets.contains``, ``sets.equivalent``, ``sets.intersects``),
regex (``find``, ``findAll``), ``url()``/``isURL``, ``quantity()``/``isQuantity``, ``ip()``/``isIP``
and ``cidr()``/``isCIDR`` with their accessors. Anything else fails compilation with cel's ``undeclared reference``.

Not done (docs/crd.md): kube's cost estimation and runtime cost budget, type errors on scalar
fields at compile time (``self.count.x`` fails when it runs), the format/semver/authz
libraries. ``set`` and ``map`` lists compare regardless of order as
kube's only because ``oldSelf``'s are put in ``self``'s order (``_aligned``).
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import datetime
import functools
import ipaddress
import re
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from k8py.api import errors
from k8py.api import protowire as pw
from k8py.api.errors import FieldError
from k8py.api.quantity import QuantityError, format_quantity, parse_quantity

Obj = dict[str, Any]

VALIDATIONS = "x-kubernetes-validations"
NIL_PATH = "<nil>"
REASONS = ("FieldValueDuplicate", "FieldValueForbidden", "FieldValueInvalid", "FieldValueRequired")
_PRESERVE = "x-kubernetes-preserve-unknown-fields"
_INT_OR_STRING = "x-kubernetes-int-or-string"
_EMBEDDED = "x-kubernetes-embedded-resource"
_OLD = "__k8py_old"
_HAS_OLD = "__k8py_has_old"

# -- property names (kube's apiserver/pkg/cel escaping) --------------------------------------------

_RESERVED = frozenset({"true", "false", "null", "in", "as", "break", "const", "continue", "else", "for", "function",
                       "if", "import", "let", "loop", "package", "namespace", "return", "var", "void", "while"})
_ESCAPABLE = re.compile(r"^[a-zA-Z_.\-/][a-zA-Z0-9_.\-/]*$")


@functools.lru_cache(maxsize=4096)
def escape(name: str) -> str | None:
    """The name a property has in CEL, or None when it cannot be reached from CEL."""
    if name in _RESERVED:
        return f"__{name}__"
    if not _ESCAPABLE.match(name):
        return None
    return (name.replace("__", "__underscores__").replace(".", "__dot__").replace("-", "__dash__")
            .replace("/", "__slash__"))


# -- the binding, loaded on first use --------------------------------------------------------------

_lib: Any = None


def _load() -> Any:
    """The binding, its extensions and kube's functions: imported on the first rule compiled, once
    per process (a module-level cache, as the import itself would be)."""
    global _lib
    if _lib is None:
        from cel_expr_python import cel  # type: ignore[import-untyped]
        from cel_expr_python.ext import ext_bindings, ext_math, ext_optional  # type: ignore[import-untyped]
        _lib = (cel, [ext_bindings.ExtBindings(), ext_math.ExtMath(), ext_optional.ExtOptional()], _functions(cel))
    return _lib


def _strict_str(v: Any) -> str:
    if not isinstance(v, str):
        raise TypeError("no such overload")
    return v


def _index_of(s: Any, sub: Any, start: int = 0) -> int:
    if isinstance(s, list):
        for i in range(start, len(s)):
            if s[i] == sub:
                return i
        return -1
    if start < 0 or start > len(s):
        raise ValueError(f"index out of range: {start}")
    return int(s.find(sub, start))


def _last_index_of(s: Any, sub: Any, end: int | None = None) -> int:
    if isinstance(s, list):
        for i in range(len(s) - 1, -1, -1):
            if s[i] == sub:
                return i
        return -1
    if end is None:
        return int(s.rfind(sub))
    if end < 0 or end >= len(s) + (1 if not s else 0):
        raise ValueError(f"index out of range: {end}")
    return int(s.rfind(sub, 0, end + len(sub)))


def _substring(s: str, start: int, end: int | None = None) -> str:
    end = len(s) if end is None else end
    if start < 0 or start > len(s):
        raise ValueError(f"index out of range: {start}")
    if end < start or end > len(s):
        raise ValueError(f"index out of range: {end}")
    return s[start:end]


def _char_at(s: str, i: int) -> str:
    if i < 0 or i > len(s):
        raise ValueError(f"index out of range: {i}")
    return s[i:i + 1]


def _split(s: str, sep: str, n: int = -1) -> list[str]:
    if n == 0:
        return []
    if sep == "":
        parts = list(s)
        if n > 0 and len(parts) > n:
            parts = [*parts[:n - 1], "".join(parts[n - 1:])]
        return parts
    return s.split(sep, n - 1) if n > 0 else s.split(sep)


def _replace(s: str, old: str, new: str, n: int = -1) -> str:
    return s.replace(old, new, n if n >= 0 else -1)


def _fmt_s(v: Any, nested: bool = False) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' if nested else v
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, float):
        return repr(v) if not v.is_integer() or abs(v) >= 1e21 else str(int(v))
    if isinstance(v, list):
        return "[" + ", ".join(_fmt_s(x, True) for x in v) + "]"
    if isinstance(v, dict):
        items = sorted(v.items(), key=lambda kv: str(kv[0]))
        return "{" + ", ".join(f"{_fmt_s(k, True)}: {_fmt_s(x, True)}" for k, x in items) + "}"
    return str(v)


_FORMAT_VERB = re.compile(r"%(?:\.(\d+))?([sdfexXob%])|%")


def _format(template: str, args: list[Any]) -> str:
    """ext strings' ``format``: %s, %d, %f/%.Nf, %e, %x/%X, %o, %b and %%."""
    out: list[str] = []
    pos = 0
    n = 0
    for m in _FORMAT_VERB.finditer(template):
        out.append(template[pos:m.start()])
        pos = m.end()
        verb, prec = m.group(2), m.group(1)
        if verb is None:
            raise ValueError(f"could not parse formatting clause: unrecognized formatting clause at {m.start()}")
        if verb == "%":
            out.append("%")
            continue
        if n >= len(args):
            raise ValueError(f"index {n} out of range")
        v = args[n]
        n += 1
        if verb == "s":
            out.append(_fmt_s(v))
        elif verb == "d" and isinstance(v, int) and not isinstance(v, bool):
            out.append(str(v))
        elif verb in "fe" and isinstance(v, int | float) and not isinstance(v, bool):
            out.append(f"{float(v):.{int(prec) if prec else 6}{verb}}")
        elif verb in "xX" and isinstance(v, int | str | bytes) and not isinstance(v, bool):
            h = (format(v, "x") if isinstance(v, int)
                 else (v.encode() if isinstance(v, str) else v).hex())
            out.append(h.upper() if verb == "X" else h)
        elif verb == "o" and isinstance(v, int) and not isinstance(v, bool):
            out.append(format(v, "o"))
        elif verb == "b" and isinstance(v, int | bool):
            out.append(format(int(v), "b"))
        else:
            raise ValueError(f"error during formatting: no such overload for %{verb}")
    out.append(template[pos:])
    return "".join(out)


def _is_sorted(xs: list[Any]) -> bool:
    return all(not (xs[i + 1] < xs[i]) for i in range(len(xs) - 1))


def _min(xs: list[Any]) -> Any:
    if not xs:
        raise ValueError("min called on empty list")
    return min(xs)


def _max(xs: list[Any]) -> Any:
    if not xs:
        raise ValueError("max called on empty list")
    return max(xs)


def _re(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as e:
        raise ValueError(f"invalid regular expression: {e}") from None


def _find(s: str, pattern: str) -> str:
    m = _re(pattern).search(s)
    return m.group(0) if m else ""


def _find_all(s: str, pattern: str, n: int = -1) -> list[str]:
    if n == 0:
        return []
    out = [m.group(0) for m in _re(pattern).finditer(s)]
    return out[:n] if n > 0 else out


# url(): kube's library accepts absolute URIs and absolute paths (Go's url.ParseRequestURI)
_URL_KEY = "__k8py_url__"
_QUANTITY_KEY = "__k8py_quantity__"


def _parse_url(s: str) -> urllib.parse.SplitResult | None:
    if not s or any(c in s for c in " \t\n"):
        return None
    try:
        u = urllib.parse.urlsplit(s)
        _ = u.port
    except ValueError:
        return None
    if u.fragment or "#" in s:
        return None
    if u.scheme:
        return u if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*$", u.scheme) else None
    return u if s.startswith("/") else None


def _url(s: str) -> dict[str, str]:
    if _parse_url(s) is None:
        raise ValueError(f"URL parse error during conversion from string: parse {errors.go_repr(s)}: invalid URI for request")
    return {_URL_KEY: s}


def _url_part(part: str) -> Any:
    def get(u: dict[str, str]) -> Any:
        p = _parse_url(u.get(_URL_KEY, ""))
        if p is None:
            raise ValueError("no such overload")
        if part == "scheme":
            return p.scheme
        if part == "host":
            return p.netloc.rsplit("@", 1)[-1]
        if part == "hostname":
            return p.hostname or ""
        if part == "port":
            return str(p.port) if p.port is not None else ""
        if part == "path":
            return p.path
        return {k: v for k, v in urllib.parse.parse_qs(p.query, keep_blank_values=True).items()}
    return get


def _quantity(s: str) -> dict[str, str]:
    try:
        parse_quantity(s)
    except QuantityError:
        raise ValueError("quantities must match the regular expression "
                         "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'") from None
    return {_QUANTITY_KEY: s}


def _q(v: dict[str, str]) -> Any:
    return parse_quantity(v.get(_QUANTITY_KEY, ""))


def _is_quantity(s: str) -> bool:
    try:
        parse_quantity(s)
    except QuantityError:
        return False
    return True


def _q_as_integer(v: dict[str, str]) -> int:
    q = _q(v)
    if q.value.denominator != 1 or not (-(2 ** 63) <= q.value <= 2 ** 63 - 1):
        raise ValueError("cannot convert value to integer")
    return int(q.value)


def _q_add(a: dict[str, str], b: Any) -> dict[str, str]:
    other = _q(b) if isinstance(b, dict) else parse_quantity(str(b))
    return {_QUANTITY_KEY: format_quantity(_q(a) + other)}


def _q_sub(a: dict[str, str], b: Any) -> dict[str, str]:
    other = _q(b) if isinstance(b, dict) else parse_quantity(str(b))
    return {_QUANTITY_KEY: format_quantity(_q(a) - other)}


# ip() and cidr(): kube's ip/cidr libraries (netip parsing: no zones, no IPv4-mapped IPv6, no
# leading zeros in IPv4), the values carried as one-key maps like urls and quantities
_IP_KEY = "__k8py_ip__"
_CIDR_KEY = "__k8py_cidr__"
IPAddr = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNet = ipaddress.IPv4Network | ipaddress.IPv6Network


def _parse_ip(s: str) -> IPAddr:
    if "%" in s:
        raise ValueError(f"IP address with zone value is not allowed: {s}")
    try:
        a = ipaddress.ip_address(s)
    except ValueError:
        raise ValueError(f"IP Address {errors.go_repr(s)} parse error during conversion from string: ParseAddr({errors.go_repr(s)}): "
                         "unable to parse IP") from None
    if isinstance(a, ipaddress.IPv6Address) and a.ipv4_mapped is not None:
        raise ValueError(f"IPv4-mapped IPv6 address is not allowed: {s}")
    return a


def _parse_cidr(s: str) -> tuple[IPAddr, int]:
    addr, sep, bits = s.partition("/")
    if not sep or not bits.isdigit() or (len(bits) > 1 and bits[0] == "0"):
        raise ValueError(f"network address parse error during conversion from string: netip.ParsePrefix({errors.go_repr(s)}): "
                         "bad bits after slash")
    a = _parse_ip(addr)
    n = int(bits)
    if n > a.max_prefixlen:
        raise ValueError(f"network address parse error during conversion from string: netip.ParsePrefix({errors.go_repr(s)}): "
                         "prefix length out of range")
    return a, n


def _valid(parse: Any, s: str) -> bool:
    try:
        parse(s)
    except ValueError:
        return False
    return True


def _ip_of(v: Any) -> IPAddr:
    return _parse_ip(v[_IP_KEY] if isinstance(v, dict) else str(v))


def _net(v: dict[str, str]) -> IPNet:
    a, n = _parse_cidr(v[_CIDR_KEY])
    return ipaddress.ip_network((a, n), strict=False)


def _is_link_local_multicast(a: IPAddr) -> bool:
    if a.version == 4:
        return a in ipaddress.ip_network("224.0.0.0/24")
    return a in ipaddress.ip_network("ff02::/16")


def _is_global_unicast(a: IPAddr) -> bool:
    # Go's netip.Addr.IsGlobalUnicast: private addresses count as global unicast
    if a.is_unspecified or a.is_loopback or a.is_multicast or a.is_link_local:
        return False
    return not (a.version == 4 and a == ipaddress.IPv4Address("255.255.255.255"))


def _contains_cidr(c: dict[str, str], other: Any) -> bool:
    net = _net(c)
    o = _net(other) if isinstance(other, dict) else _net({_CIDR_KEY: str(other)})
    return o.version == net.version and o.prefixlen >= net.prefixlen and o.network_address in net


def _functions(cel: Any) -> list[Any]:
    """kube's CEL libraries (strings, lists, regex, url, quantity, ip, cidr) as function
    declarations with Python implementations. URLs, quantities, IPs and CIDRs are carried as
    one-key maps."""
    T = cel.Type
    S, I, B, D, DYN = T.STRING, T.INT, T.BOOL, T.DOUBLE, T.DYN
    LD, LS = T.List(DYN), T.List(S)
    URL = Q = IP = CIDR = T.Map(S, S)
    # the binding dispatches a dyn parameter by no runtime type: one overload per element type
    scalars = [("string", S), ("int", I), ("double", D), ("bool", B), ("uint", T.UINT), ("bytes", T.BYTES),
               ("list", LD), ("map", T.Map(DYN, DYN))]

    def fn(name: str, *overloads: tuple[str, Any, list[Any], bool, Any]) -> Any:
        return cel.FunctionDecl(name, [cel.Overload(oid, ret, params, is_member=member, impl=impl)
                                       for oid, ret, params, member, impl in overloads])

    return [
        fn("charAt", ("string_char_at_int", S, [S, I], True, _char_at)),
        fn("indexOf", ("string_index_of_string", I, [S, S], True, _index_of),
           ("string_index_of_string_int", I, [S, S, I], True, _index_of),
           *[(f"list_{n}_index_of", I, [LD, t], True, _index_of) for n, t in scalars]),
        fn("lastIndexOf", ("string_last_index_of_string", I, [S, S], True, _last_index_of),
           ("string_last_index_of_string_int", I, [S, S, I], True, _last_index_of),
           *[(f"list_{n}_last_index_of", I, [LD, t], True, _last_index_of) for n, t in scalars]),
        fn("lowerAscii", ("string_lower_ascii", S, [S], True,
                          lambda s: "".join(c.lower() if c.isascii() else c for c in s))),
        fn("upperAscii", ("string_upper_ascii", S, [S], True,
                          lambda s: "".join(c.upper() if c.isascii() else c for c in s))),
        fn("replace", ("string_replace_string_string", S, [S, S, S], True, _replace),
           ("string_replace_string_string_int", S, [S, S, S, I], True, _replace)),
        fn("split", ("string_split_string", LS, [S, S], True, _split),
           ("string_split_string_int", LS, [S, S, I], True, _split)),
        fn("substring", ("string_substring_int", S, [S, I], True, _substring),
           ("string_substring_int_int", S, [S, I, I], True, _substring)),
        fn("trim", ("string_trim", S, [S], True, lambda s: s.strip(" \t\n\r\v\f\u0085\u00a0"))),
        fn("join", ("list_join", S, [LS], True, lambda xs: "".join(_strict_str(x) for x in xs)),
           ("list_join_string", S, [LS, S], True, lambda xs, sep: sep.join(_strict_str(x) for x in xs))),
        fn("reverse", ("string_reverse", S, [S], True, lambda s: s[::-1])),
        fn("format", ("string_format", S, [S, LD], True, _format)),
        fn("isSorted", ("list_is_sorted", B, [LD], True, _is_sorted)),
        # cel-go's ext.Sets, in kube's environment since 1.28
        fn("sets.contains", ("list_sets_contains_list", B, [LD, LD], False, lambda a, b: all(x in a for x in b))),
        fn("sets.equivalent", ("list_sets_equivalent_list", B, [LD, LD], False,
                               lambda a, b: all(x in a for x in b) and all(x in b for x in a))),
        fn("sets.intersects", ("list_sets_intersects_list", B, [LD, LD], False, lambda a, b: any(x in a for x in b))),
        fn("sum", ("list_sum", DYN, [LD], True, lambda xs: sum(xs) if xs else 0)),
        fn("min", ("list_min", DYN, [LD], True, _min)),
        fn("max", ("list_max", DYN, [LD], True, _max)),
        fn("find", ("string_find_string", S, [S, S], True, _find)),
        fn("findAll", ("string_find_all_string", LS, [S, S], True, _find_all),
           ("string_find_all_string_int", LS, [S, S, I], True, _find_all)),
        fn("url", ("string_to_url", URL, [S], False, _url)),
        fn("isURL", ("is_url_string", B, [S], False, lambda s: _parse_url(s) is not None)),
        fn("getScheme", ("url_get_scheme", S, [URL], True, _url_part("scheme"))),
        fn("getHost", ("url_get_host", S, [URL], True, _url_part("host"))),
        fn("getHostname", ("url_get_hostname", S, [URL], True, _url_part("hostname"))),
        fn("getPort", ("url_get_port", S, [URL], True, _url_part("port"))),
        fn("getEscapedPath", ("url_get_escaped_path", S, [URL], True, _url_part("path"))),
        fn("getQuery", ("url_get_query", T.Map(S, LS), [URL], True, _url_part("query"))),
        fn("quantity", ("string_to_quantity", Q, [S], False, _quantity)),
        fn("isQuantity", ("is_quantity_string", B, [S], False, _is_quantity)),
        fn("isInteger", ("quantity_is_integer", B, [Q], True, lambda v: _q(v).value.denominator == 1)),
        fn("asInteger", ("quantity_as_integer", I, [Q], True, _q_as_integer)),
        fn("asApproximateFloat", ("quantity_as_float", D, [Q], True, lambda v: float(_q(v).value))),
        fn("sign", ("quantity_sign", I, [Q], True, lambda v: _q(v).sign())),
        fn("compareTo", ("quantity_compare_to", I, [Q, Q], True, lambda a, b: _q(a).cmp(_q(b)))),
        fn("isGreaterThan", ("quantity_is_greater_than", B, [Q, Q], True, lambda a, b: _q(a) > _q(b))),
        fn("isLessThan", ("quantity_is_less_than", B, [Q, Q], True, lambda a, b: _q(a) < _q(b))),
        fn("add", ("quantity_add", Q, [Q, Q], True, _q_add), ("quantity_add_int", Q, [Q, I], True, _q_add)),
        fn("sub", ("quantity_sub", Q, [Q, Q], True, _q_sub), ("quantity_sub_int", Q, [Q, I], True, _q_sub)),
        fn("isIP", ("is_ip", B, [S], False, lambda s: _valid(_parse_ip, s))),
        fn("ip", ("string_to_ip", IP, [S], False, lambda s: {_IP_KEY: str(_parse_ip(s))}),
           ("cidr_ip", IP, [CIDR], True, lambda c: {_IP_KEY: str(_parse_cidr(c[_CIDR_KEY])[0])})),
        fn("ip.isCanonical", ("ip_is_canonical", B, [S], False, lambda s: str(_parse_ip(s)) == s)),
        fn("family", ("ip_family", I, [IP], True, lambda v: _ip_of(v).version)),
        fn("isUnspecified", ("ip_is_unspecified", B, [IP], True, lambda v: _ip_of(v).is_unspecified)),
        fn("isLoopback", ("ip_is_loopback", B, [IP], True, lambda v: _ip_of(v).is_loopback)),
        fn("isLinkLocalMulticast", ("ip_is_link_local_multicast", B, [IP], True,
                                    lambda v: _is_link_local_multicast(_ip_of(v)))),
        fn("isLinkLocalUnicast", ("ip_is_link_local_unicast", B, [IP], True,
                                  lambda v: _ip_of(v).is_link_local and not _ip_of(v).is_multicast)),
        fn("isGlobalUnicast", ("ip_is_global_unicast", B, [IP], True, lambda v: _is_global_unicast(_ip_of(v)))),
        fn("isCIDR", ("is_cidr", B, [S], False, lambda s: _valid(_parse_cidr, s))),
        fn("cidr", ("string_to_cidr", CIDR, [S], False,
                    lambda s: {_CIDR_KEY: "{}/{}".format(*_parse_cidr(s))})),
        fn("containsIP", ("cidr_contains_ip_ip", B, [CIDR, IP], True, lambda c, v: _ip_of(v) in _net(c)),
           ("cidr_contains_ip_string", B, [CIDR, S], True, lambda c, v: _ip_of(v) in _net(c))),
        fn("containsCIDR", ("cidr_contains_cidr", B, [CIDR, CIDR], True, _contains_cidr),
           ("cidr_contains_cidr_string", B, [CIDR, S], True, _contains_cidr)),
        fn("masked", ("cidr_masked", CIDR, [CIDR], True, lambda c: {_CIDR_KEY: str(_net(c))})),
        fn("prefixLength", ("cidr_prefix_length", I, [CIDR], True, lambda c: _parse_cidr(c[_CIDR_KEY])[1])),
        *_authz_functions(fn, T),
    ]


# -- kube's authz library (admission expressions' ``authorizer``) -----------------------------------
#
# ``k8s.io/apiserver/pkg/cel/library/authz.go``: ``authorizer.group(g).resource(r).subresource(s)
# .namespace(ns).name(n).fieldSelector(f).labelSelector(l).check(verb)``, ``authorizer.path(p).check(httpVerb)``,
# ``authorizer.serviceAccount(ns, name)`` (checks as that service account),
# ``authorizer.requestResource`` (the request's own resource), and the decision's ``allowed()``,
# ``reason()``, ``errored()``, ``error()``. The values are string maps carrying the principal
# (``_AUTHZ``, the user as JSON); a check asks the function set for the evaluation with
# :func:`authorizing` (the API server's authorizer; none: the decision is an error).

_AUTHZ = "__k8py_authz__"
AuthorizeFn = Callable[[Obj, Obj], tuple[bool, str]]
_AUTHORIZE: contextvars.ContextVar[AuthorizeFn | None] = contextvars.ContextVar("k8py_cel_authorize", default=None)


@contextlib.contextmanager
def authorizing(fn: AuthorizeFn | None) -> Iterator[None]:
    """Checks made while evaluating inside this block ask ``fn(user, attributes)``: ``user`` as
    the API writes a UserInfo, ``attributes`` ``{verb, path}`` or ``{verb, resourceRequest: True,
    group, resource, subresource, namespace, name}`` and the ``fieldSelector`` / ``labelSelector``
    strings when the check has them."""
    token = _AUTHORIZE.set(fn)
    try:
        yield
    finally:
        _AUTHORIZE.reset(token)


def authorizer_value(user: Obj, request_resource: Obj | None = None) -> Obj:
    """The ``authorizer`` variable for ``user``; ``request_resource`` (group, resource,
    subresource, namespace, name) is what ``authorizer.requestResource`` checks."""
    principal = orjson.dumps(user).decode()
    out: Obj = {_AUTHZ: principal}
    if request_resource is not None:
        out["requestResource"] = {_AUTHZ: principal, "kind": "resource",
                                  **{k: str(request_resource.get(k) or "") for k in
                                     ("group", "resource", "subresource", "namespace", "name")}}
    return out


def _not_empty(what: str, value: str) -> str:
    if not value.strip():
        raise ValueError(f"{what} must not be empty")
    return value


_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _service_account(a: Obj, namespace: str, name: str) -> Obj:
    if not (_DNS_SUBDOMAIN.match(name) and len(name) <= 253):
        raise ValueError("Invalid service account name")
    if not (_DNS_LABEL.match(namespace) and len(namespace) <= 63):
        raise ValueError("Invalid service account namespace")
    return authorizer_value({"username": f"system:serviceaccount:{namespace}:{name}",
                             "groups": ["system:serviceaccounts", f"system:serviceaccounts:{namespace}",
                                        "system:authenticated"]})


def _check(c: Obj, verb: str) -> Obj:
    kind = c.get("kind")
    if kind == "path":
        attrs: Obj = {"verb": verb, "path": c.get("path", "")}
    elif kind == "resource":
        attrs = {"verb": verb, "resourceRequest": True,
                 **{k: c.get(k, "") for k in ("group", "resource", "subresource", "namespace", "name")}}
        for k in ("fieldSelector", "labelSelector"):
            if c.get(k):
                attrs[k] = c[k]
    else:
        raise TypeError("no such overload")
    fn = _AUTHORIZE.get()
    if fn is None:
        return {"kind": "decision", "allowed": "false", "reason": "", "error": "no authorizer is configured"}
    try:
        ok, reason = fn(orjson.loads(c[_AUTHZ]), attrs)
    except Exception as e:  # noqa: BLE001 - an authorizer's failure is the decision's error, as kube's
        return {"kind": "decision", "allowed": "false", "reason": "", "error": str(e) or type(e).__name__}
    return {"kind": "decision", "allowed": "true" if ok else "false", "reason": reason, "error": ""}


def _with(key: str) -> Callable[[Obj, str], Obj]:
    def set_field(c: Obj, value: str) -> Obj:
        if c.get("kind") != "resource":
            raise TypeError("no such overload")
        return {**c, key: value}
    return set_field


def _decision(field_name: str) -> Callable[[Obj], Any]:
    def get(d: Obj) -> Any:
        if d.get("kind") != "decision":
            raise TypeError("no such overload")
        v = d.get(field_name, "")
        return v == "true" if field_name == "allowed" else v
    return get


def _authz_functions(fn: Callable[..., Any], T: Any) -> list[Any]:
    S, B = T.STRING, T.BOOL
    AZ, C = T.Map(S, T.DYN), T.Map(S, S)
    return [
        fn("path", ("authorizer_path", C, [AZ, S], True,
                    lambda a, p: {_AUTHZ: a[_AUTHZ], "kind": "path", "path": _not_empty("path", p)})),
        fn("group", ("authorizer_group", C, [AZ, S], True, lambda a, g: {_AUTHZ: a[_AUTHZ], "kind": "group", "group": g})),
        fn("serviceAccount", ("authorizer_serviceaccount", AZ, [AZ, S, S], True, _service_account)),
        fn("resource", ("groupcheck_resource", C, [C, S], True,
                        lambda g, r: {_AUTHZ: g[_AUTHZ], "kind": "resource", "group": g.get("group", ""),
                                      "resource": _not_empty("resource", r)})),
        fn("subresource", ("resourcecheck_subresource", C, [C, S], True, _with("subresource"))),
        fn("namespace", ("resourcecheck_namespace", C, [C, S], True, _with("namespace"))),
        fn("name", ("resourcecheck_name", C, [C, S], True, _with("name"))),
        # kube 1.31+ (AuthorizeWithSelectors): the selectors go with the check's attributes
        fn("fieldSelector", ("authorizer_fieldselector", C, [C, S], True, _with("fieldSelector"))),
        fn("labelSelector", ("authorizer_labelselector", C, [C, S], True, _with("labelSelector"))),
        fn("check", ("resourcecheck_check", C, [C, S], True, _check)),
        fn("allowed", ("decision_allowed", B, [C], True, _decision("allowed"))),
        fn("reason", ("decision_reason", S, [C], True, _decision("reason"))),
        fn("errored", ("decision_errored", B, [C], True, lambda d: bool(_decision("error")(d)))),
        fn("error", ("decision_error", S, [C], True, _decision("error"))),
    ]


# -- types and values ------------------------------------------------------------------------------


def _props(s: Obj) -> dict[str, Obj]:
    p = s.get("properties")
    return p if isinstance(p, dict) else {}


def _sub(s: Obj, key: str) -> Obj | None:
    v = s.get(key)
    return v if isinstance(v, dict) else None


def type_name(s: Obj) -> str:
    """The schema's type as kube's errors name it (``Invalid value: "object"``)."""
    return str(s.get("type") or "")


def _is_dyn(s: Obj) -> bool:
    return bool(s.get(_INT_OR_STRING) or s.get("nullable") or not s.get("type")
                or (s.get(_PRESERVE) and not _props(s) and _sub(s, "additionalProperties") is None
                    and s.get("type") == "object"))


Decl = tuple[Any, ...]


def _decl(s: Obj) -> Decl:
    """The CEL type of a schema node, as a hashable description (``_cel_type`` makes it)."""
    if _is_dyn(s):
        return ("dyn",)
    t = s.get("type")
    if t == "object":
        add = _sub(s, "additionalProperties")
        if add is not None and not _props(s):
            return ("map", _decl(add))
        return ("map", ("dyn",))
    if t == "array":
        it = _sub(s, "items")
        return ("list", _decl(it) if it is not None else ("dyn",))
    if t == "string":
        # kube types format duration/date/date-time as duration/timestamp; the binding takes no
        # such values inside maps and lists, so they stay strings here but as self
        # (_self_decl; docs/crd.md)
        return ("bytes",) if s.get("format") == "byte" else ("string",)
    return ({"integer": ("int",), "number": ("double",), "boolean": ("bool",)}).get(str(t), ("dyn",))


_TEMPORAL = {"duration": ("duration",), "date": ("timestamp",), "date-time": ("timestamp",)}


def _self_decl(s: Obj) -> Decl:
    """``self``'s type: as ``_decl``, and a string of format duration, date or date-time is a
    duration or timestamp as kube's (the binding takes those only as a variable's own value,
    not inside maps or lists, so nested ones stay strings)."""
    if not _is_dyn(s) and s.get("type") == "string" and s.get("format") in _TEMPORAL:
        return _TEMPORAL[str(s["format"])]
    return _decl(s)


_GO_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _self_value(v: Any, s: Obj, root: bool, like: Any = None) -> Any:
    """``self`` (or ``oldSelf``) for a node: ``to_cel``, with the temporal strings of
    ``_self_decl`` parsed (left as they are when they do not parse: the rule then fails)."""
    if isinstance(v, str) and _self_decl(s) == ("duration",):
        text = v.strip()
        sign = -1 if text.startswith("-") else 1
        text = text.lstrip("+-")
        if text == "0":
            return datetime.timedelta(0)
        pos, total = 0, 0.0
        for m in _GO_DURATION.finditer(text):
            if m.start() != pos:
                return v
            total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
            pos = m.end()
        return datetime.timedelta(seconds=sign * total) if text and pos == len(text) else v
    if isinstance(v, str) and _self_decl(s) == ("timestamp",):
        try:
            if s.get("format") == "date":
                return datetime.datetime.strptime(v, "%Y-%m-%d").replace(tzinfo=datetime.UTC)
            ts = datetime.datetime.fromisoformat(v.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            return v
        return ts if ts.tzinfo else ts.replace(tzinfo=datetime.UTC)
    return to_cel(v, s, root, like)


def _cel_type(cel: Any, d: Decl) -> Any:
    T = cel.Type
    if d[0] == "map":
        return T.Map(T.STRING, _cel_type(cel, d[1]))
    if d[0] == "list":
        return T.List(_cel_type(cel, d[1]))
    return {"dyn": T.DYN, "bytes": T.BYTES, "string": T.STRING, "int": T.INT, "double": T.DOUBLE,
            "bool": T.BOOL, "duration": T.DURATION, "timestamp": T.TIMESTAMP}[d[0]]


def _aligned(old: list[Any], new: Any, s: Obj) -> list[Any]:
    """``old`` (a ``set`` or ``map`` list) in the order of the matching elements of ``new``, the
    rest after: kube's equality of such lists ignores order, the binding's does not, so
    ``self == oldSelf`` holds for a reordered list."""
    lt = s.get("x-kubernetes-list-type")
    if lt not in ("set", "map") or not isinstance(new, list):
        return old
    keys = s.get("x-kubernetes-list-map-keys") or []

    def ident(x: Any) -> Any:
        if lt == "map" and isinstance(x, dict):
            return tuple(repr(x.get(k)) for k in keys)
        return repr(x)
    rest = list(old)
    out: list[Any] = []
    for n in new:
        i = next((j for j, o in enumerate(rest) if ident(o) == ident(n)), None)
        if i is not None:
            out.append(rest.pop(i))
    return out + rest


def to_cel(v: Any, s: Obj, root: bool = False, like: Any = None) -> Any:
    """A value of the object as CEL sees it under schema ``s``; ``like`` is the new value when
    ``v`` is the old one (set and map lists are put in its order)."""
    if v is None:
        return None
    if isinstance(v, dict):
        props = _props(s)
        add = _sub(s, "additionalProperties")
        other = like if isinstance(like, dict) else {}
        if add is not None and not props:
            return {k: to_cel(x, add, like=other.get(k)) for k, x in v.items()}
        out: dict[str, Any] = {}
        for k, x in v.items():
            name = escape(k)
            if name is None:
                continue
            if (root or s.get(_EMBEDDED)) and k == "metadata" and isinstance(x, dict):
                out[k] = {m: x[m] for m in ("name", "generateName") if m in x}
            elif k in props:
                out[name] = to_cel(x, props[k], like=other.get(k))
            else:
                out[name] = x
        return out
    if isinstance(v, list):
        it = _sub(s, "items") or {}
        if like is None:
            return [to_cel(x, it) for x in v]
        ordered = _aligned(v, like, s)
        news = like if isinstance(like, list) else []
        return [to_cel(x, it, like=news[i] if i < len(news) else None) for i, x in enumerate(ordered)]
    if s.get(_INT_OR_STRING):
        return v
    t = s.get("type")
    if t == "integer" and isinstance(v, float) and v.is_integer():
        return int(v)
    if t == "number" and isinstance(v, int) and not isinstance(v, bool):
        return float(v)
    if t == "string" and isinstance(v, str) and s.get("format") == "byte":
        try:
            return base64.b64decode(v, validate=True)
        except ValueError:
            return v
    return v


# -- compilation -----------------------------------------------------------------------------------

_STRING_LIT = re.compile(r"""(?:[rR]?[bB]?|[bB]?[rR]?)(?:'''.*?'''|\"\"\".*?\"\"\"|'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*")""",
                         re.DOTALL)
_OLD_SELF = re.compile(r"(?<![\w.])oldSelf\b")


def blank_string_literals(expr: str) -> str:
    """``expr`` with the inside of every string literal blanked, offsets kept (so that a scan for
    names finds none inside strings and reports the user's positions)."""
    return _STRING_LIT.sub(lambda m: "'" + " " * (len(m.group(0)) - 2) + "'", expr)


def uses_old_self(expr: str) -> bool:
    """Whether the expression refers to ``oldSelf`` (outside string literals)."""
    return bool(_OLD_SELF.search(_STRING_LIT.sub("''", expr)))


def _cel_error(e: Exception, line_shift: int = 0) -> str:
    """cel-cpp's compile error as cel-go prints it: ``ERROR: <input>:1:6: ...`` with the source line
    and a caret (the binding's status code prefix and suffix removed)."""
    text = str(e)
    text = re.sub(r"^[A-Z_]+: ", "", text)
    text = re.sub(r" \[[A-Z_]+\]$", "", text)
    if line_shift:
        text = re.sub(r"<input>:(\d+):", lambda m: f"<input>:{int(m.group(1)) - line_shift}:", text)
    return text


@dataclass(slots=True)
class Compiled:
    """One rule of a schema node, compiled (or the reasons it did not)."""

    rule: Obj
    program: Any = None
    message_program: Any = None
    uses_old_self: bool = False
    optional_old_self: bool = False
    field_path: str = ""
    error: str = ""
    message_error: str = ""


_ENVS: dict[tuple[Decl, bool], Any] = {}
_MAX_ENVS = 256


def _env(self_decl: Decl, optional_old: bool) -> Any:
    """The environment for rules whose ``self`` has this type, shared: a new environment's first
    compile costs ~1 ms more than the next ones (measured: bench/cel_rules_bench.py)."""
    key = (self_decl, optional_old)
    env = _ENVS.get(key)
    if env is None:
        cel, exts, funcs = _load()
        self_type = _cel_type(cel, self_decl)
        variables = {"self": self_type}
        if optional_old:
            variables[_OLD] = self_type
            variables[_HAS_OLD] = cel.Type.BOOL
        else:
            variables["oldSelf"] = self_type
        if len(_ENVS) >= _MAX_ENVS:
            _ENVS.clear()
        env = _ENVS[key] = cel.NewEnv(variables=variables, extensions=exts, functions=funcs)
    return env


def _wrap_optional_old(expr: str) -> str:
    # oldSelf as an optional value (kube's optionalOldSelf): the binding takes no optional values
    # as inputs, so the rule is compiled inside a cel.bind that makes one; the rule starts on the
    # second line so error positions can be shifted back to the user's text
    return f"cel.bind(oldSelf, {_HAS_OLD} ? optional.of({_OLD}) : optional.none(),\n{expr}\n)"


def compile_rules(s: Obj, root: bool = False, check_fields: bool = True) -> list[Compiled]:
    """Compile the rules of one schema node (kube's ``cel.Compile``); ``root`` for the object's
    root schema (it has apiVersion, kind and metadata). ``check_fields=False`` skips the
    ``undefined field`` check (done when the CRD was written) for validators."""
    rules = s.get(VALIDATIONS) or []
    if not rules:
        return []
    cel, _, _ = _load()
    self_decl = _self_decl(s)
    out: list[Compiled] = []
    for r in rules:
        r = r if isinstance(r, dict) else {}
        c = Compiled(rule=r, optional_old_self=r.get("optionalOldSelf") is True)
        expr = str(r.get("rule") or "")
        out.append(c)
        if not expr.strip():
            continue
        env = _env(self_decl, c.optional_old_self)
        c.uses_old_self = uses_old_self(expr)
        try:
            if c.optional_old_self:
                prog = env.compile(_wrap_optional_old(expr))
            else:
                prog = env.compile(expr)
        except RuntimeError as e:
            c.error = "compilation failed: " + _cel_error(e, 1 if c.optional_old_self else 0)
            continue
        undefined = _undefined_fields(prog, s, root, expr, 1 if c.optional_old_self else 0) if check_fields else ""
        if undefined:
            c.error = "compilation failed: " + undefined
            continue
        if prog.return_type() not in (cel.Type.BOOL, cel.Type.DYN):
            c.error = "cel expression must evaluate to a bool"
            continue
        c.program = prog
        mexpr = str(r.get("messageExpression") or "")
        if mexpr.strip():
            menv = _env(self_decl, False)
            try:
                mprog = menv.compile(mexpr)
            except RuntimeError as e:
                c.message_error = "messageExpression compilation failed: " + _cel_error(e)
                continue
            undefined = _undefined_fields(mprog, s, root, mexpr, 0) if check_fields else ""
            if undefined:
                c.message_error = "messageExpression compilation failed: " + undefined
                continue
            if mprog.return_type() not in (cel.Type.STRING, cel.Type.DYN):
                c.message_error = "messageExpression must evaluate to a string"
                continue
            c.message_program = mprog
        fp = str(r.get("fieldPath") or "")
        if fp.strip():
            try:
                c.field_path = valid_field_path(fp, s)
            except ValueError:
                c.field_path = ""
    return out


# -- fields of the schema checked at compile time ----------------------------------------------------
#
# ``self`` is a map of dyn values to the binding, so a misspelt field would only be found when the
# rule runs. kube's typed ``self`` makes it a compile error (``undefined field 'x'``): the checked
# expression (cel.expr.CheckedExpr, read with protowire) is walked with the schema of each
# subexpression, and a field selected on an object whose fields are all known, that is not one
# of them, is that error.

_META_OBJ: Obj = {"type": "object", "properties": {"name": {"type": "string"}, "generateName": {"type": "string"}}}


def _closed_fields(s: Obj, root: bool) -> dict[str, Obj] | None:
    """The CEL names of an object schema's fields when they are all known, else None."""
    if (s.get("type") != "object" or s.get(_PRESERVE) or _sub(s, "additionalProperties") is not None
            or s.get("additionalProperties") is True):
        return None
    props = dict(_props(s))
    if root or s.get(_EMBEDDED):
        props.update(apiVersion={"type": "string"}, kind={"type": "string"}, metadata=_META_OBJ)
    elif not props:
        return None
    out: dict[str, Obj] = {}
    for k, v in props.items():
        name = escape(k)
        if name is not None:
            out[name] = v if isinstance(v, dict) else {}
    return out


class _Walk:
    def __init__(self, s: Obj, root: bool) -> None:
        self.self_schema = s
        self.root = root
        self.found: list[tuple[int, str]] = []  # (expression id, field)

    def expr(self, buf: bytes, scope: dict[str, tuple[Obj | None, bool]]) -> tuple[Obj | None, bool]:
        """The schema of an expression's value (None: unknown) and whether it is an object's root."""
        eid = 0
        for num, _, val in pw.iter_fields(buf):
            if num == 2:
                eid = int(val)
            elif num == 4:  # ident
                name = next((v.decode() for n, _, v in pw.iter_fields(val) if n == 1), "")
                if name in scope:
                    return scope[name]
                if name in ("self", "oldSelf"):
                    return self.self_schema, self.root
                return None, False
            elif num == 5:  # select
                operand, fname = b"", ""
                for n, _, v in pw.iter_fields(val):
                    if n == 1:
                        operand = v
                    elif n == 2:
                        fname = v.decode()
                sch, root = self.expr(operand, scope)
                return self._select(sch, root, fname, eid)
            elif num == 6:  # call
                target, args, fn = b"", [], ""
                for n, _, v in pw.iter_fields(val):
                    if n == 1:
                        target = v
                    elif n == 2:
                        fn = v.decode()
                    elif n == 3:
                        args.append(v)
                if target:
                    self.expr(target, scope)
                got = [self.expr(a, scope) for a in args]
                if fn == "_[_]" and got and got[0][0] is not None:
                    return self._index(got[0][0])
                return None, False
            elif num == 7:  # list
                for n, _, v in pw.iter_fields(val):
                    if n == 1:
                        self.expr(v, scope)
                return None, False
            elif num == 8:  # map or message literal
                for n, _, v in pw.iter_fields(val):
                    if n == 2:
                        for en, _, ev in pw.iter_fields(v):
                            if en in (3, 4):
                                self.expr(ev, scope)
                return None, False
            elif num == 9:  # comprehension (the macros, cel.bind)
                return self._comprehension(val, scope)
        return None, False

    def _select(self, sch: Obj | None, root: bool, fname: str, eid: int) -> tuple[Obj | None, bool]:
        if sch is None:
            return None, False
        fields = _closed_fields(sch, root)
        if fields is not None:
            if fname not in fields:
                self.found.append((eid, fname))
                return None, False
            return fields[fname], False
        add = _sub(sch, "additionalProperties")
        if add is not None:
            return add, False
        return None, False

    @staticmethod
    def _index(sch: Obj) -> tuple[Obj | None, bool]:
        if sch.get("type") == "array":
            return _sub(sch, "items"), False
        add = _sub(sch, "additionalProperties")
        return (add, False) if add is not None else (None, False)

    def _comprehension(self, buf: bytes, scope: dict[str, tuple[Obj | None, bool]]) -> tuple[Obj | None, bool]:
        parts: dict[int, Any] = {}
        for n, _, v in pw.iter_fields(buf):
            parts[n] = v
        iter_var = parts.get(1, b"").decode()
        iter_var2 = parts.get(8, b"").decode()
        accu_var = parts.get(3, b"").decode()
        rng, _ = self.expr(parts.get(2, b""), scope) if 2 in parts else (None, False)
        init = self.expr(parts[4], scope) if 4 in parts else (None, False)
        elem: Obj | None = None
        if rng is not None:
            if rng.get("type") == "array":
                elem = _sub(rng, "items")
            elif rng.get("type") == "object":
                elem = {"type": "string"}  # a map's keys
        inner = dict(scope)
        inner[iter_var] = (elem, False)
        if iter_var2:
            inner[iter_var2] = (None, False)
        inner[accu_var] = init
        for n in (5, 6, 7):
            if n in parts:
                out = self.expr(parts[n], inner)
        return out if 7 in parts else (None, False)


def _undefined_fields(prog: Any, s: Obj, root: bool, source: str, line_shift: int,
                      scope: dict[str, tuple[Obj | None, bool]] | None = None) -> str:
    """cel-go's ``undefined field`` errors of a compiled expression, in its format, or "";
    ``scope`` types other variables than ``self`` by their schemas."""
    try:
        anyb = prog.serialize()
        checked = next(v for n, _, v in pw.iter_fields(anyb) if n == 2)
        expr, info = b"", b""
        for n, _, v in pw.iter_fields(checked):
            if n == 4:
                expr = v
            elif n == 5:
                info = v
        walk = _Walk(s, root)
        walk.expr(expr, dict(scope or {}))
        if not walk.found:
            return ""
        positions: dict[int, int] = {}
        line_offsets: list[int] = []
        for n, wt, v in pw.iter_fields(info):
            if n == 4:
                k = p = 0
                for en, _, ev in pw.iter_fields(v):
                    if en == 1:
                        k = int(ev)
                    elif en == 2:
                        p = int(ev)
                positions[k] = p
            elif n == 3:
                if wt == pw.LEN:
                    pos = 0
                    while pos < len(v):
                        x, pos = pw.read_varint(v, pos)
                        line_offsets.append(x)
                else:
                    line_offsets.append(int(v))
    except (pw.WireError, StopIteration, UnicodeDecodeError, RecursionError):
        return ""  # nothing to say rather than a wrong error: the rule still runs
    starts = [0, *line_offsets]
    lines = source.split("\n")
    out = []
    for eid, fname in walk.found:
        offset = positions.get(eid, 0)
        line = max(i for i, st in enumerate(starts) if st <= offset) if starts else 0
        col = offset - starts[line]
        line -= line_shift
        text = lines[line] if 0 <= line < len(lines) else ""
        out.append(f"ERROR: <input>:{line + 1}:{col + 1}: undefined field '{fname}'\n | {text}\n | {'.' * col}^")
    return "\n".join(out)


# -- fieldPath (kube's ValidFieldPath) -------------------------------------------------------------

_FP_TOKEN = re.compile(r"'(?:\\.|[^'\\])*'|[.\[\]]|[^.\[\]']+")


def _unescape_single(s: str) -> str:
    table = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "'": "'", "\\": "\\"}

    def one(m: re.Match[str]) -> str:
        c = m.group(0)[1]
        if c not in table:
            raise ValueError(f"invalid escape char \\{c}")
        return table[c]
    return re.sub(r"\\.", one, s)


def valid_field_path(path: str, s: Obj) -> str:
    """The field path (``.a.b``, ``.m['key']``) as a field error path under ``s`` (``a.b``,
    ``m[key]``); ValueError when it does not name a field of the schema."""
    toks = _FP_TOKEN.findall(path)
    out = ""
    cur = s
    i = 0

    def step(name: str, named: bool) -> None:
        nonlocal out, cur
        if named:
            nxt = _props(cur).get(name)
            if nxt is None:
                raise ValueError("does not refer to a valid field")
            out = f"{out}.{name}" if out else name
            cur = nxt
        else:
            out = f"{out}[{name}]"
            cur = _sub(cur, "additionalProperties") or {}

    while i < len(toks):
        tok = toks[i]
        if tok == "[":
            if i + 2 >= len(toks) or toks[i + 2] != "]":
                raise ValueError("unexpected end of JSON path")
            q = toks[i + 1]
            if len(q) < 2 or q[0] != "'" or q[-1] != "'":
                raise ValueError(f"expected single quoted string but got {q}")
            name = _unescape_single(q[1:-1])
            if _props(cur):
                step(name, True)
            elif _sub(cur, "additionalProperties") is not None:
                step(name, False)
            else:
                raise ValueError("does not refer to a valid field")
            i += 3
        elif tok == ".":
            if i + 1 >= len(toks):
                raise ValueError("unexpected end of JSON path")
            name = toks[i + 1]
            if _props(cur):
                step(name, True)
            elif _sub(cur, "additionalProperties") is not None:
                step(name, False)
            else:
                raise ValueError("does not refer to a valid field")
            i += 2
        else:
            raise ValueError(f"expected [ or . but got: {tok}")
    return out


# -- the CRD's rules checked when it is written ----------------------------------------------------


class RuleValue:
    """A rule as kube prints it in a field error (``%#v`` of ``apiextensions.ValidationRule``)."""

    def __init__(self, r: Obj) -> None:
        self.r = r

    def go_repr(self) -> str:
        r = self.r

        def q(k: str) -> str:
            return errors.go_repr(str(r.get(k) or ""))
        reason = ("(*apiextensions.FieldValueErrorReason)(nil)" if r.get("reason") is None
                  else f'"{r.get("reason")}"')
        opt = "(*bool)(nil)" if r.get("optionalOldSelf") is None else str(bool(r.get("optionalOldSelf"))).lower()
        return (f"apiextensions.ValidationRule{{Rule:{q('rule')}, Message:{q('message')}, "
                f"MessageExpression:{q('messageExpression')}, Reason:{reason}, FieldPath:{q('fieldPath')}, "
                f"OptionalOldSelf:{opt}}}")


_NEWLINES = re.compile(r"[\n\r]+")


def rule_errors(s: Obj, path: str, uncorrelatable: str | None, schema_errors: bool,
                root: bool = False) -> list[FieldError]:
    """kube's checks of a schema node's ``x-kubernetes-validations`` (ValidateCustomResource-
    DefinitionOpenAPISchema): the fields of each rule, then (only when the schema itself is
    valid, as kube) each rule compiled. ``uncorrelatable`` is the path of the outermost list
    whose items cannot be matched to old ones (not ``x-kubernetes-list-type: map``), where
    ``oldSelf`` is refused."""
    rules = s.get(VALIDATIONS)
    if not rules:
        return []
    vp = f"{path}.{VALIDATIONS}"
    if not isinstance(rules, list):
        return [errors.invalid(vp, rules, "must be a list of rules")]
    errs: list[FieldError] = []
    for i, r in enumerate(rules):
        rp = f"{vp}[{i}]"
        if not isinstance(r, dict):
            errs.append(errors.invalid(rp, r, "must be an object"))
            continue
        rule = str(r.get("rule") or "")
        msg = r.get("message")
        msg = msg if isinstance(msg, str) else ""
        if not rule.strip():
            errs.append(errors.required(f"{rp}.rule", "rule is not specified"))
        elif msg and not msg.strip():
            errs.append(errors.invalid(f"{rp}.message", msg, "must be non-empty if specified"))
        elif _NEWLINES.search(msg.strip()):
            errs.append(errors.invalid(f"{rp}.message", msg, "must not contain line breaks"))
        elif _NEWLINES.search(rule.strip()) and not msg.strip():
            errs.append(errors.required(f"{rp}.message", "message must be specified if rule contains line breaks"))
        mexpr = r.get("messageExpression")
        if isinstance(mexpr, str) and mexpr and not mexpr.strip():
            errs.append(errors.required(f"{rp}.messageExpression", "messageExpression must be non-empty if specified"))
        reason = r.get("reason")
        if reason is not None and reason not in REASONS:
            errs.append(errors.not_supported(f"{rp}.reason", reason, REASONS))
        fp = r.get("fieldPath")
        if isinstance(fp, str) and fp:
            if not fp.strip():
                errs.append(errors.invalid(f"{rp}.fieldPath", fp, "must be non-empty if specified"))
            if _NEWLINES.search(fp):
                errs.append(errors.invalid(f"{rp}.fieldPath", fp, "must not contain line breaks"))
            try:
                valid_field_path(fp, s)
            except ValueError:
                errs.append(errors.invalid(f"{rp}.fieldPath", fp, "must be a valid path"))
    if errs or schema_errors:
        return errs
    for i, c in enumerate(compile_rules(s, root)):
        rp = f"{vp}[{i}]"
        if c.error:
            errs.append(errors.invalid(f"{rp}.rule", RuleValue(c.rule), c.error))
        if c.message_error:
            errs.append(errors.invalid(f"{rp}.messageExpression", RuleValue(c.rule), c.message_error))
        if c.uses_old_self:
            if uncorrelatable is not None:
                errs.append(errors.invalid(f"{rp}.rule", str(c.rule.get("rule") or ""),
                                           f"oldSelf cannot be used on the uncorrelatable portion of the schema "
                                           f"within {uncorrelatable}"))
        elif c.rule.get("optionalOldSelf") is not None:
            errs.append(errors.invalid(f"{rp}.optionalOldSelf", bool(c.rule.get("optionalOldSelf")),
                                       "may not be set if oldSelf is not used in rule"))
    return errs


def has_rules(s: Any) -> bool:
    """Whether a schema has rules anywhere (so the binding is needed)."""
    if not isinstance(s, dict):
        return False
    if s.get(VALIDATIONS):
        return True
    return (any(has_rules(v) for v in _props(s).values()) or has_rules(s.get("items"))
            or has_rules(s.get("additionalProperties")))


# -- evaluation ------------------------------------------------------------------------------------


def _runtime_error(text: str) -> str:
    """cel-cpp's evaluation error in cel-go's words (the ones kube's users see)."""
    text = re.sub(r"^[A-Z_]+: ", "", text)
    m = re.match(r'Key not found in map : "?(.*?)"?$', text)
    if m:
        return f"no such key: {m.group(1)}"
    m = re.match(r"Index error: index=(-?\d+) size=\d+", text)
    if m:
        return f"index out of bounds: {m.group(1)}"
    if text == "divide by zero":
        return "division by zero"
    if text.startswith(("No matching overloads", "no such overload")):
        return "no such overload"
    return text


@dataclass(slots=True)
class Validator:
    """The rules of a schema and of everything under it, compiled once (kube's
    ``cel.Validator``)."""

    schema: Obj
    root: bool = False
    rules: list[Compiled] = field(default_factory=list)
    properties: dict[str, Validator] = field(default_factory=dict)
    items: Validator | None = None
    additional: Validator | None = None

    @staticmethod
    def build(s: Obj, root: bool = True) -> Validator | None:
        if not has_rules(s):
            return None
        v = Validator(schema=s, root=root, rules=compile_rules(s, root, check_fields=False))
        for k, ps in _props(s).items():
            child = Validator.build(ps, False)
            if child is not None:
                v.properties[k] = child
        it = _sub(s, "items")
        if it is not None:
            v.items = Validator.build(it, False)
        add = _sub(s, "additionalProperties")
        if add is not None:
            v.additional = Validator.build(add, False)
        return v

    def validate(self, obj: Any, old: Any, path: str = "", ratcheted: list[FieldError] | None = None,
                 near_equal: bool = False) -> list[FieldError]:
        """Evaluate every rule at every node of ``obj``; ``old`` is the object before an update
        (None on create): transition rules run only where it has a corresponding value.

        kube's validation ratcheting (GA in 1.33): on an update, a rule that does not use
        ``oldSelf`` and fails on a value equal to its old one (or, where there is no
        corresponding old value, under an unchanged nearest ancestor that has one) gives no
        error; its error goes to ``ratcheted`` (kube sends it as a warning). ``near_equal`` is
        that ancestor's equality."""
        if obj is None:
            return []
        equal = (obj == old) if old is not None else near_equal
        errs = self._expressions(obj, old, path, equal, ratcheted)
        s = self.schema
        if isinstance(obj, dict):
            old_map = old if isinstance(old, dict) else {}
            if self.additional is not None and not _props(s):
                for k, v in obj.items():
                    errs += self.additional.validate(v, old_map.get(k), f"{path}[{k}]", ratcheted, equal)
            for k, v in obj.items():
                sub = self.properties.get(k)
                if sub is not None and not (self.root and k in ("apiVersion", "kind", "metadata")):
                    errs += sub.validate(v, old_map.get(k), f"{path}.{k}" if path else k, ratcheted, equal)
        elif isinstance(obj, list) and self.items is not None:
            keys = s.get("x-kubernetes-list-map-keys") if s.get("x-kubernetes-list-type") == "map" else None
            olds: dict[tuple[Any, ...], Any] = {}
            if keys and isinstance(old, list):
                for o in old:
                    if isinstance(o, dict):
                        olds[tuple(o.get(k) for k in keys)] = o
            for i, v in enumerate(obj):
                ov = olds.get(tuple(v.get(k) for k in keys)) if keys and isinstance(v, dict) else None
                errs += self.items.validate(v, ov, f"{path}[{i}]", ratcheted, equal)
        return errs

    def _expressions(self, obj: Any, old: Any, rel: str, unchanged: bool,
                     ratcheted: list[FieldError] | None) -> list[FieldError]:
        if not self.rules:
            return []
        # kube's path of the object's root is a nil field.Path, printed "<nil>"
        path = rel or NIL_PATH
        s = self.schema
        tname = type_name(s)
        errs: list[FieldError] = []
        value: Any = None
        old_value: Any = None
        for c in self.rules:
            if c.error or c.message_error:
                errs.append(errors.invalid(path, tname, f"rule compile error: {c.error or c.message_error}"))
                continue
            if c.program is None:
                continue
            if c.uses_old_self and old is None and not c.optional_old_self:
                continue
            if value is None:
                value = _self_value(obj, s, self.root)
                old_value = _self_value(old, s, self.root, like=obj) if old is not None else None
            data: Obj = {"self": value}
            if c.optional_old_self:
                data[_OLD] = old_value if old is not None else value
                data[_HAS_OLD] = old is not None
            else:
                data["oldSelf"] = old_value if old is not None else value
            try:
                result = c.program.eval(data=data)
            except Exception as e:  # noqa: BLE001 - an error raised inside a library function is the rule's error
                text = _rule_text(c.rule)
                errs.append(errors.invalid(path, tname, f"{_runtime_error(str(e))} evaluating rule: {text}"))
                continue
            kind = result.type().name().lower()
            if kind == "bool" and result.value() is True:
                continue
            text = _rule_text(c.rule)
            if kind == "error":
                msg = _runtime_error(str(result.value()))
                if msg == "no such overload":
                    errs.append(errors.invalid(path, tname, f"'{msg}': call arguments did not match a supported "
                                                            f"operator, function or macro signature for rule: {text}"))
                else:
                    errs.append(errors.invalid(path, tname, f"{msg} evaluating rule: {text}"))
                continue
            where = path
            if c.field_path:
                where = f"{rel}.{c.field_path}" if rel and not c.field_path.startswith("[") else rel + c.field_path
            detail = ""
            if c.message_program is not None:
                detail = self._message(c, data)
            if not detail:
                m = str(c.rule.get("message") or "").strip()
                detail = m or f"failed rule: {text}"
            err = _error_for_reason(where, tname, detail, c.rule.get("reason"))
            if unchanged and not c.uses_old_self:
                if ratcheted is not None:
                    ratcheted.append(err)
            else:
                errs.append(err)
        return errs

    @staticmethod
    def _message(c: Compiled, data: Obj) -> str:
        """The messageExpression's string, or "" (then kube falls back to message or the rule)."""
        d = dict(data)
        if c.optional_old_self:
            d.pop(_OLD, None)
            d.pop(_HAS_OLD, None)
            d["oldSelf"] = data["self"]
        try:
            r = c.message_program.eval(data=d)
        except Exception:  # noqa: BLE001 - a failing messageExpression falls back to the message, as kube
            return ""
        if r.type().name().lower() != "string":
            return ""
        out = str(r.value()).strip()
        if not out or _NEWLINES.search(out) or len(out) > 5 * 1024:
            return ""
        return out


def _rule_text(r: Obj) -> str:
    m = str(r.get("message") or "").strip()
    return m or str(r.get("rule") or "").strip()


def _error_for_reason(path: str, tname: str, detail: str, reason: Any) -> FieldError:
    if reason == "FieldValueForbidden":
        return errors.forbidden(path, detail)
    if reason == "FieldValueRequired":
        return errors.required(path, detail)
    if reason == "FieldValueDuplicate":
        return errors.duplicate(path, tname)
    return errors.invalid(path, tname, detail)


# -- admission expressions (ValidatingAdmissionPolicy, webhook matchConditions) -----------------------
#
# kube's ``k8s.io/apiserver/pkg/admission/plugin/cel``: the same libraries as the rules above, with
# the request's variables (``object``, ``oldObject``, ``request``, ``params``, ``namespaceObject``,
# ``variables``, ``authorizer``) in place of ``self``. They are ``dyn``, as kube compiles them when
# a policy is written (``variables`` a map of them, ``authorizer`` the authz library's value).

_ADMISSION_ENVS: dict[tuple[str, ...], Any] = {}


def _admission_env(names: tuple[str, ...]) -> Any:
    env = _ADMISSION_ENVS.get(names)
    if env is None:
        cel, exts, funcs = _load()
        T = cel.Type
        decls = {n: (T.Map(T.STRING, T.DYN) if n in ("variables", "authorizer") else T.DYN) for n in names}
        env = _ADMISSION_ENVS[names] = cel.NewEnv(variables=decls, extensions=exts, functions=funcs)
    return env


def undefined_fields(program: Any, source: str, schemas: dict[str, Obj]) -> str:
    """cel-go's ``undefined field`` errors of a compiled admission expression whose variables
    ``schemas`` names are typed by those (structural) schemas, or "" (kube's type checking of
    policies against the kinds they match)."""
    return _undefined_fields(program, {}, False, source, 0, {n: (sch, False) for n, sch in schemas.items()})


def compile_admission(expr: str, names: tuple[str, ...], returns: tuple[str, ...]) -> tuple[Any, str]:
    """Compile an admission expression with the variables ``names`` (kube's ``CompileCELExpression``):
    ``(program, "")``, or ``(None, detail)`` with kube's detail (``compilation failed: ERROR: ...``,
    ``must evaluate to bool``). ``returns`` are the accepted result types (``bool``, ``string``,
    ``null_type``; ``dyn`` results are accepted and checked when they run)."""
    cel, _, _ = _load()
    try:
        prog = _admission_env(names).compile(expr)
    except RuntimeError as e:
        return None, "compilation failed: " + _cel_error(e)
    types = {"bool": cel.Type.BOOL, "string": cel.Type.STRING, "null_type": cel.Type.NULL}
    rt = prog.return_type()
    if returns and rt != cel.Type.DYN and all(rt != types[r] for r in returns):
        want = returns[0] if len(returns) == 1 else "one of [" + " ".join(returns) + "]"
        return None, f"must evaluate to {want}"
    return prog, ""


class EvalError(Exception):
    """An admission expression failed when it ran; the text is cel-go's."""


def run_admission(program: Any, data: Obj) -> Any:
    """Run a compiled admission expression: its value (bool, str, None, ...) or ``EvalError``."""
    try:
        r = program.eval(data=data)
    except Exception as e:  # noqa: BLE001 - an error raised inside a library function is the expression's error
        raise EvalError(_runtime_error(str(e))) from None
    kind = r.type().name().lower()
    if kind == "error":
        raise EvalError(_runtime_error(str(r.value())))
    if kind in ("null_type", "null"):
        return None
    return _plain(r.value())


def _plain(v: Any) -> Any:
    """A result as plain Python values: the binding hands maps' and lists' items back as accessors,
    which it does not take as inputs (a policy's variable is the input of later expressions)."""
    if isinstance(v, dict):
        return {_plain(k): _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    plain = getattr(v, "plain_value", None)
    if callable(plain):
        return _plain(plain())
    return v
