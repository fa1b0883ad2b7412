"""Building blocks shared by every kind: string formats, ObjectMeta, label selectors.

Messages are Kubernetes' own (``k8s.io/apimachinery/pkg/util/validation``,
``pkg/api/validation/objectmeta.go``, ``pkg/apis/meta/v1/validation``), so
kubectl users read what a real cluster would tell them. Paths are strings in
``field.Path`` form: ``spec.containers[0].name``, ``metadata.labels[app]``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from k8py.api.errors import (
    FieldError,
    duplicate,
    forbidden,
    invalid,
    not_supported,
    required,
    too_long,
)

Errs = list[FieldError]
NameFn = Callable[[str, bool], list[str]]

# ---------------------------------------------------------------------------
# values and paths


class GoRaw(int):
    """A bad value that must print exactly as Go's ``%#v`` does, e.g.
    ``map[string]string(nil)`` or ``v1.LabelSelector{...}``.

    ``errors.go_repr`` prints numbers with ``str()``; deriving from ``int`` routes
    this value through that branch so the text comes out verbatim.
    """

    text: str

    def __new__(cls, text: str) -> GoRaw:  # noqa: PYI034 - an int subclass; Self is not needed here
        obj = int.__new__(cls, 0)
        obj.text = text
        return obj

    def __str__(self) -> str:
        return self.text

    __repr__ = __str__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GoRaw) and other.text == self.text

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash(self.text)


def go_quote(s: str) -> str:
    return orjson.dumps(s).decode()


def go_map(d: Any) -> GoRaw:
    """``map[string]string{...}`` with keys sorted, as Go's fmt prints maps."""
    if d is None:
        return GoRaw("map[string]string(nil)")
    if not isinstance(d, dict):
        return GoRaw(orjson.dumps(d).decode())
    inner = ", ".join(f"{go_quote(str(k))}:{go_quote(str(v))}" for k, v in sorted(d.items()))
    return GoRaw("map[string]string{" + inner + "}")


def go_strings(xs: Any) -> str:
    if xs is None:
        return "[]string(nil)"
    return "[]string{" + ", ".join(go_quote(str(x)) for x in xs) + "}"


def go_label_selector(sel: Any) -> GoRaw:
    """How Kubernetes prints a ``*metav1.LabelSelector`` in a field error."""
    sel = sel if isinstance(sel, dict) else {}
    ml = go_map(sel.get("matchLabels")).text
    exprs = sel.get("matchExpressions")
    if exprs is None:
        me = "[]v1.LabelSelectorRequirement(nil)"
    else:
        parts = []
        for e in exprs if isinstance(exprs, list) else []:
            e = e if isinstance(e, dict) else {}
            parts.append(
                "v1.LabelSelectorRequirement{{Key:{}, Operator:{}, Values:{}}}".format(go_quote(str(e.get("key", ""))), go_quote(str(e.get("operator", ""))), go_strings(e.get("values")))
            )
        me = "[]v1.LabelSelectorRequirement{" + ", ".join(parts) + "}"
    return GoRaw(f"v1.LabelSelector{{MatchLabels:{ml}, MatchExpressions:{me}}}")


def child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def index(path: str, i: int) -> str:
    return f"{path}[{i}]"


def key(path: str, k: str) -> str:
    return f"{path}[{k}]"


def d_(x: Any) -> dict[str, Any]:
    """``x`` if it is an object, else an empty one (schema checks report the type)."""
    return x if isinstance(x, dict) else {}


def l_(x: Any) -> list[Any]:
    return x if isinstance(x, list) else []


def s_(x: Any) -> str:
    return x if isinstance(x, str) else ""


def i_(x: Any) -> int | None:
    if isinstance(x, bool):
        return None
    if isinstance(x, int):
        return x
    if isinstance(x, float) and x.is_integer():
        return int(x)
    return None


# ---------------------------------------------------------------------------
# string formats (k8s.io/apimachinery/pkg/util/validation)


def max_len_error(n: int, unit: str = "characters") -> str:
    """MaxLenError: util/validation says "characters"; the newer label-key/value
    checks (api/validate/content) say "bytes"."""
    return f"must be no more than {n} {unit}"


def regex_error(msg: str, fmt: str, *examples: str) -> str:
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    msg += " (e.g. "
    for i, ex in enumerate(examples):
        if i > 0:
            msg += " or "
        msg += f"'{ex}', "
    return msg + f"regex used for validation is '{fmt}')"


def inclusive_range_error(lo: int, hi: int) -> str:
    return f"must be between {lo} and {hi}, inclusive"


EMPTY_ERROR = "must be non-empty"
NEGATIVE_ERROR = "must be greater than or equal to 0"
IMMUTABLE_ERROR = "field is immutable"

DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
                     "and must start and end with an alphanumeric character")
DNS1123_SUBDOMAIN_FMT = DNS1123_LABEL_FMT + r"(\." + DNS1123_LABEL_FMT + ")*"
DNS1123_SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
                         "'-' or '.', and must start and end with an alphanumeric character")
DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
DNS1035_LABEL_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
                     "start with an alphabetic character, and end with an alphanumeric character")
WILDCARD_SUBDOMAIN_FMT = r"\*\." + DNS1123_SUBDOMAIN_FMT
WILDCARD_SUBDOMAIN_MSG = ("a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, "
                          "which must consist of lower case alphanumeric characters, '-' or '.' and end with an "
                          "alphanumeric character")
QNAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
QNAME_MSG = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
LABEL_VALUE_FMT = "(" + QNAME_FMT + ")?"
LABEL_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
                   "and must start and end with an alphanumeric character")
CONFIG_KEY_FMT = "[-._a-zA-Z0-9]+"
CONFIG_KEY_MSG = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"
HTTP_HEADER_FMT = "[-A-Za-z0-9]+"
HTTP_HEADER_MSG = "a valid HTTP header must consist of alphanumeric characters or '-'"
PERCENT_FMT = "[0-9]+%"
PERCENT_MSG = "a valid percent string must be a numeric string followed by an ending '%'"
C_IDENT_FMT = "[A-Za-z_][A-Za-z0-9_]*"
C_IDENT_MSG = "a valid C identifier must start with alphabetic character or '_', followed by a string of alphanumeric characters or '_'"

_re: dict[str, re.Pattern[str]] = {}


def _full(fmt: str) -> re.Pattern[str]:
    p = _re.get(fmt)
    if p is None:
        p = _re[fmt] = re.compile("^" + fmt + "$")
    return p


def _match(fmt: str, value: str) -> bool:
    # \Z-anchored fullmatch: "$" in Python also matches before a trailing newline
    return _full(fmt).fullmatch(value) is not None


def _blen(s: str) -> int:
    return len(s.encode())


def is_dns1123_label(value: str) -> list[str]:
    errs = []
    if _blen(value) > 63:
        errs.append(max_len_error(63))
    if not _match(DNS1123_LABEL_FMT, value):
        if _match(DNS1123_SUBDOMAIN_FMT, value):
            errs.append("must not contain dots")
        else:
            errs.append(regex_error(DNS1123_LABEL_MSG, DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errs


def is_dns1123_subdomain(value: str) -> list[str]:
    errs = []
    if _blen(value) > 253:
        errs.append(max_len_error(253))
    if not _match(DNS1123_SUBDOMAIN_FMT, value):
        errs.append(regex_error(DNS1123_SUBDOMAIN_MSG, DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errs


def is_dns1035_label(value: str) -> list[str]:
    errs = []
    if _blen(value) > 63:
        errs.append(max_len_error(63))
    if not _match(DNS1035_LABEL_FMT, value):
        errs.append(regex_error(DNS1035_LABEL_MSG, DNS1035_LABEL_FMT, "my-name", "abc-123"))
    return errs


def is_wildcard_dns1123_subdomain(value: str) -> list[str]:
    errs = []
    if _blen(value) > 253:
        errs.append(max_len_error(253))
    if not _match(WILDCARD_SUBDOMAIN_FMT, value):
        errs.append(regex_error(WILDCARD_SUBDOMAIN_MSG, WILDCARD_SUBDOMAIN_FMT, "*.example.com"))
    return errs


def is_qualified_name(value: str) -> list[str]:
    """A label key / qualified name: ``[prefix/]name``."""
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part " + EMPTY_ERROR)
        else:
            errs.extend("prefix part " + m for m in is_dns1123_subdomain(prefix))
    else:
        return [
            "a qualified name " + regex_error(QNAME_MSG, QNAME_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    if not name:
        errs.append("name part " + EMPTY_ERROR)
    elif _blen(name) > 63:
        errs.append("name part " + max_len_error(63, "bytes"))
    if not _match(QNAME_FMT, name):
        errs.append("name part " + regex_error(QNAME_MSG, QNAME_FMT, "MyName", "my.name", "123-abc"))
    return errs


def is_label_value(value: str) -> list[str]:
    errs = []
    if _blen(value) > 63:
        errs.append(max_len_error(63, "bytes"))
    if not _match(LABEL_VALUE_FMT, value):
        errs.append(regex_error(LABEL_VALUE_MSG, LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


def _chdir_prefix(value: str) -> list[str]:
    if value == ".":
        return ["must not be '.'"]
    if value == "..":
        return ["must not be '..'"]
    if value.startswith(".."):
        return ["must not start with '..'"]
    return []


def is_config_map_key(value: str) -> list[str]:
    errs = []
    if _blen(value) > 253:
        errs.append(max_len_error(253))
    if not _match(CONFIG_KEY_FMT, value):
        errs.append(regex_error(CONFIG_KEY_MSG, CONFIG_KEY_FMT, "key.name", "KEY_NAME", "key-name"))
    errs.extend(_chdir_prefix(value))
    return errs


def is_env_var_name(value: str) -> list[str]:
    """Relaxed env var names (RelaxedEnvironmentVariableValidation, on by default)."""
    errs = []
    if not value:
        errs.append("environment variable name " + EMPTY_ERROR)
    for ch in value:
        if ord(ch) > 127 or not ch.isprintable() or ch == "=":
            errs.append("a valid environment variable name must consist only of printable ASCII characters other than '='")
            break
    return errs


def is_c_identifier(value: str) -> list[str]:
    if not _match(C_IDENT_FMT, value):
        return [regex_error(C_IDENT_MSG, C_IDENT_FMT, "my_name", "MY_NAME", "MyName")]
    return []


def is_valid_port_num(port: int) -> list[str]:
    return [] if 1 <= port <= 65535 else [inclusive_range_error(1, 65535)]


def is_valid_port_name(port: str) -> list[str]:
    errs = []
    if len(port) > 15:
        errs.append(max_len_error(15))
    if not re.fullmatch(r"[-a-z0-9]+", port):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not re.search(r"[a-z]", port):
        errs.append("must contain at least one letter (a-z)")
    if "--" in port:
        errs.append("must not contain consecutive hyphens")
    if port and (port[0] == "-" or port[-1] == "-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def is_http_header_name(value: str) -> list[str]:
    if not _match(HTTP_HEADER_FMT, value):
        return [regex_error(HTTP_HEADER_MSG, HTTP_HEADER_FMT, "X-Header-Name")]
    return []


def is_valid_percent(value: str) -> list[str]:
    if not _match(PERCENT_FMT, value):
        return [regex_error(PERCENT_MSG, PERCENT_FMT, "1%", "93%")]
    return []


def parse_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def validate_ip(path: str, value: str) -> Errs:
    if parse_ip(value) is None:
        return [invalid(path, value, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)")]
    return []


def validate_cidr(path: str, value: str) -> Errs:
    try:
        ipaddress.ip_network(value, strict=False)
        if "/" not in value:
            raise ValueError
    except ValueError:
        return [invalid(path, value, "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)")]
    return []


def is_valid_path_segment_name(name: str) -> list[str]:
    if name in (".", ".."):
        return [f"may not be '{name}'"]
    return is_valid_path_segment_prefix(name)


def is_valid_path_segment_prefix(name: str) -> list[str]:
    return [f"may not contain '{c}'" for c in ("/", "%") if c in name]


# ---------------------------------------------------------------------------
# name validators (ValidateNameFunc): (name, prefix) -> messages


def _mask_trailing_dash(name: str) -> str:
    if len(name) > 1 and name.endswith("-"):
        return name[:-2] + "a"
    return name


def name_is_dns_subdomain(name: str, prefix: bool) -> list[str]:
    return is_dns1123_subdomain(_mask_trailing_dash(name) if prefix else name)


def name_is_dns_label(name: str, prefix: bool) -> list[str]:
    return is_dns1123_label(_mask_trailing_dash(name) if prefix else name)


def name_is_dns1035_label(name: str, prefix: bool) -> list[str]:
    return is_dns1035_label(_mask_trailing_dash(name) if prefix else name)


def name_is_path_segment(name: str, prefix: bool) -> list[str]:
    return is_valid_path_segment_prefix(name) if prefix else is_valid_path_segment_name(name)


# ---------------------------------------------------------------------------
# simple field checks


def nonnegative(path: str, value: Any) -> Errs:
    v = i_(value)
    if v is not None and v < 0:
        return [invalid(path, v, NEGATIVE_ERROR)]
    return []


def immutable(path: str, new: Any, old: Any) -> Errs:
    if _semantic(new) != _semantic(old):
        return [invalid(path, _bad(new), IMMUTABLE_ERROR)]
    return []


def _semantic(v: Any) -> Any:
    """Normalize for Kubernetes' semantic equality: empty containers equal absent ones."""
    if isinstance(v, dict):
        out = {k: _semantic(x) for k, x in v.items()}
        out = {k: x for k, x in out.items() if x is not None}
        return out or None
    if isinstance(v, list):
        return [_semantic(x) for x in v] or None
    if v == "" or v is False or (type(v) is int and v == 0):
        return None
    return v


def _bad(v: Any) -> Any:
    """A value as Go would print it in an error: structured values as JSON."""
    if v is None:
        return "null"
    if isinstance(v, dict | list):
        return GoRaw(orjson.dumps(v, option=orjson.OPT_SORT_KEYS).decode())
    return v


bad_value = _bad
semantic = _semantic


def one_of(path: str, value: Any, allowed: Iterable[str], required_if_empty: bool = True) -> Errs:
    allowed = list(allowed)
    if value in (None, ""):
        return [required(path, "")] if required_if_empty else []
    if value not in allowed:
        return [not_supported(path, value, allowed)]
    return []


# ---------------------------------------------------------------------------
# labels, annotations, selectors


def validate_label_name(name: str, path: str) -> Errs:
    return [invalid(path, name, m) for m in is_qualified_name(name)]


def validate_labels(labels: Any, path: str) -> Errs:
    errs: Errs = []
    for k, v in d_(labels).items():
        errs += validate_label_name(k, path)
        if isinstance(v, str):
            errs += [invalid(path, v, m) for m in is_label_value(v)]
    return errs


TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024


def validate_annotations(annotations: Any, path: str) -> Errs:
    errs: Errs = []
    total = 0
    for k, v in d_(annotations).items():
        errs += [invalid(path, k, m) for m in is_qualified_name(k.lower())]
        total += _blen(k) + _blen(v if isinstance(v, str) else "")
    if total > TOTAL_ANNOTATION_SIZE_LIMIT:
        errs.append(too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT))
    return errs


SELECTOR_OPS = ("In", "NotIn", "Exists", "DoesNotExist")


def validate_label_selector(sel: Any, path: str, allow_invalid_values: bool = False) -> Errs:
    if not isinstance(sel, dict):
        return []
    errs = validate_labels(sel.get("matchLabels"), child(path, "matchLabels"))
    for i, expr in enumerate(l_(sel.get("matchExpressions"))):
        errs += validate_selector_requirement(d_(expr), index(child(path, "matchExpressions"), i), allow_invalid_values)
    return errs


def validate_selector_requirement(expr: dict[str, Any], path: str, allow_invalid_values: bool = False) -> Errs:
    errs: Errs = []
    op = expr.get("operator")
    values = l_(expr.get("values"))
    if op in ("In", "NotIn"):
        if not values:
            errs.append(required(child(path, "values"), "must be specified when `operator` is 'In' or 'NotIn'"))
    elif op in ("Exists", "DoesNotExist"):
        if values:
            errs.append(forbidden(child(path, "values"),
                                  "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
    else:
        errs.append(invalid(child(path, "operator"), op if isinstance(op, str) else "", "not a valid selector operator"))
    errs += validate_label_name(s_(expr.get("key")), child(path, "key"))
    if not allow_invalid_values:
        for j, v in enumerate(values):
            if isinstance(v, str):
                errs += [invalid(index(child(path, "values"), j), v, m) for m in is_label_value(v)]
    return errs


def selector_is_valid(sel: Any) -> bool:
    """Whether LabelSelectorAsSelector would succeed."""
    if sel is None:
        return True
    if not isinstance(sel, dict):
        return False
    for k, v in d_(sel.get("matchLabels")).items():
        if is_qualified_name(k) or not isinstance(v, str) or is_label_value(v):
            return False
    for e in l_(sel.get("matchExpressions")):
        e = d_(e)
        op = e.get("operator")
        vals = l_(e.get("values"))
        if op not in SELECTOR_OPS or is_qualified_name(s_(e.get("key"))):
            return False
        if op in ("In", "NotIn") and not vals:
            return False
        if op in ("Exists", "DoesNotExist") and vals:
            return False
        if any(not isinstance(v, str) or is_label_value(v) for v in vals):
            return False
    return True


def selector_is_empty(sel: Any) -> bool:
    sel = d_(sel)
    return not sel.get("matchLabels") and not sel.get("matchExpressions")


def selector_matches(sel: Any, labels: Any) -> bool:
    """Whether a LabelSelector matches a label set (``nil`` selector matches nothing)."""
    if sel is None:
        return False
    sel = d_(sel)
    labels = d_(labels)
    for k, v in d_(sel.get("matchLabels")).items():
        if labels.get(k) != v:
            return False
    for e in l_(sel.get("matchExpressions")):
        e = d_(e)
        k = s_(e.get("key"))
        op = e.get("operator")
        vals = l_(e.get("values"))
        if op == "In":
            if k not in labels or labels[k] not in vals:
                return False
        elif op == "NotIn":
            if k in labels and labels[k] in vals:
                return False
        elif op == "Exists":
            if k not in labels:
                return False
        elif op == "DoesNotExist":
            if k in labels:
                return False
        else:
            return False
    return True


# ---------------------------------------------------------------------------
# ObjectMeta

STANDARD_FINALIZERS = ("kubernetes", "orphan", "foregroundDeletion")
BANNED_OWNERS = {("", "v1", "Event")}


def _parse_gv(api_version: str) -> tuple[str, str] | None:
    if api_version == "":
        return "", ""
    parts = api_version.split("/")
    if len(parts) == 1:
        return "", parts[0]
    if len(parts) == 2:
        return parts[0], parts[1]
    return None


def validate_owner_references(refs: Any, path: str) -> Errs:
    errs: Errs = []
    first_controller = ""
    refs = l_(refs)
    for ref in refs:
        ref = d_(ref)
        api_version = s_(ref.get("apiVersion"))
        kind = s_(ref.get("kind"))
        gv = _parse_gv(api_version)
        version = gv[1] if gv else ""
        if not version:
            errs.append(invalid(child(path, "apiVersion"), api_version, "version must not be empty"))
        if not kind:
            errs.append(invalid(child(path, "kind"), kind, "kind must not be empty"))
        if not s_(ref.get("name")):
            errs.append(invalid(child(path, "name"), s_(ref.get("name")), "name must not be empty"))
        if not s_(ref.get("uid")):
            errs.append(invalid(child(path, "uid"), s_(ref.get("uid")), "uid must not be empty"))
        if gv and (gv[0], gv[1], kind) in BANNED_OWNERS:
            errs.append(invalid(path, _bad(ref), f"{gv[0]}/{gv[1]}, Kind={kind} is disallowed from being an owner"))
        if ref.get("controller") is True:
            cur = f"{kind}/{s_(ref.get('name'))}"
            if first_controller:
                errs.append(invalid(path, _bad(refs),
                                    "Only one reference can have Controller set to true. Found \"true\" in references "
                                    f"for {first_controller} and {cur}"))
            else:
                first_controller = cur
    return errs


def validate_finalizers(finalizers: Any, path: str) -> Errs:
    errs: Errs = []
    fins = [f for f in l_(finalizers) if isinstance(f, str)]
    for f in fins:
        errs += [invalid(path, f, m) for m in is_qualified_name(f)]
    if "orphan" in fins and "foregroundDeletion" in fins:
        errs.append(invalid(path, GoRaw(go_strings(fins)), "finalizer orphan and foregroundDeletion cannot be both set"))
    return errs


def validate_object_meta(meta: Any, namespaced: bool, name_fn: NameFn, path: str = "metadata") -> Errs:
    meta = d_(meta)
    errs: Errs = []
    gen_name = s_(meta.get("generateName"))
    name = s_(meta.get("name"))
    if gen_name:
        errs += [invalid(child(path, "generateName"), gen_name, m) for m in name_fn(gen_name, True)]
    if not name:
        errs.append(required(child(path, "name"), "name or generateName is required"))
    else:
        errs += [invalid(child(path, "name"), name, m) for m in name_fn(name, False)]
    ns = s_(meta.get("namespace"))
    if namespaced:
        if not ns:
            errs.append(required(child(path, "namespace"), ""))
        else:
            errs += [invalid(child(path, "namespace"), ns, m) for m in name_is_dns_label(ns, False)]
    elif ns:
        errs.append(forbidden(child(path, "namespace"), "not allowed on this type"))
    errs += nonnegative(child(path, "generation"), meta.get("generation"))
    errs += validate_labels(meta.get("labels"), child(path, "labels"))
    errs += validate_annotations(meta.get("annotations"), child(path, "annotations"))
    errs += validate_owner_references(meta.get("ownerReferences"), child(path, "ownerReferences"))
    errs += validate_finalizers(meta.get("finalizers"), child(path, "finalizers"))
    return errs


def validate_object_meta_update(new: Any, old: Any, path: str = "metadata") -> Errs:
    new = d_(new)
    old = d_(old)
    errs: Errs = []
    if old.get("deletionTimestamp"):
        extra = sorted(set(l_(new.get("finalizers"))) - set(l_(old.get("finalizers"))))
        if extra:
            errs.append(forbidden(child(path, "finalizers"),
                                  "no new finalizers can be added if the object is being deleted, "
                                  f"found new finalizers {go_strings(extra)}"))
    ng, og = i_(new.get("generation")), i_(old.get("generation"))
    if ng is not None and og is not None and ng < og:
        errs.append(invalid(child(path, "generation"), ng, "must not be decremented"))
    errs += immutable(child(path, "name"), new.get("name"), old.get("name"))
    errs += immutable(child(path, "namespace"), new.get("namespace"), old.get("namespace"))
    # An update that leaves uid / creationTimestamp out keeps the stored ones (rest.BeforeUpdate).
    if new.get("uid"):
        errs += immutable(child(path, "uid"), new.get("uid"), old.get("uid"))
    if new.get("creationTimestamp") and old.get("creationTimestamp"):
        errs += immutable(child(path, "creationTimestamp"), new.get("creationTimestamp"), old.get("creationTimestamp"))
    if "deletionTimestamp" in new:
        errs += immutable(child(path, "deletionTimestamp"), new.get("deletionTimestamp"), old.get("deletionTimestamp"))
    if "deletionGracePeriodSeconds" in new:
        errs += immutable(child(path, "deletionGracePeriodSeconds"), new.get("deletionGracePeriodSeconds"),
                          old.get("deletionGracePeriodSeconds"))
    errs += validate_labels(new.get("labels"), child(path, "labels"))
    errs += validate_annotations(new.get("annotations"), child(path, "annotations"))
    errs += validate_owner_references(new.get("ownerReferences"), child(path, "ownerReferences"))
    # Finalizer names are checked on update too (ValidateObjectMetaUpdate in core does).
    errs += validate_finalizers(new.get("finalizers"), child(path, "finalizers"))
    return errs


def unique_names(items: list[Any], path: str, field_name: str = "name") -> Errs:
    seen: set[str] = set()
    errs: Errs = []
    for i, it in enumerate(items):
        n = d_(it).get(field_name)
        if not isinstance(n, str) or not n:
            continue
        if n in seen:
            errs.append(duplicate(child(index(path, i), field_name), n))
        seen.add(n)
    return errs
