"""API errors in Kubernetes' own form: ``metav1.Status`` with reason, message and causes.

One place for the exception hierarchy the API server turns into responses.
Field errors follow ``k8s.io/apimachinery/pkg/util/validation/field``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Protocol

import orjson


class FieldErrorType(str, enum.Enum):
    # value is the `reason` in Status causes; the text is what the message says
    NOT_FOUND = "FieldValueNotFound"
    REQUIRED = "FieldValueRequired"
    DUPLICATE = "FieldValueDuplicate"
    INVALID = "FieldValueInvalid"
    NOT_SUPPORTED = "FieldValueNotSupported"
    FORBIDDEN = "FieldValueForbidden"
    TOO_LONG = "FieldValueTooLong"
    TOO_MANY = "FieldValueTooMany"
    INTERNAL = "InternalError"
    TYPE_INVALID = "FieldValueTypeInvalid"

    @property
    def text(self) -> str:
        return _TYPE_TEXT[self]


_TYPE_TEXT = {
    FieldErrorType.NOT_FOUND: "Not found",
    FieldErrorType.REQUIRED: "Required value",
    FieldErrorType.DUPLICATE: "Duplicate value",
    FieldErrorType.INVALID: "Invalid value",
    FieldErrorType.NOT_SUPPORTED: "Unsupported value",
    FieldErrorType.FORBIDDEN: "Forbidden",
    FieldErrorType.TOO_LONG: "Too long",
    FieldErrorType.TOO_MANY: "Too many",
    FieldErrorType.INTERNAL: "Internal error",
    FieldErrorType.TYPE_INVALID: "Invalid value",
}

_OMIT = object()


def go_repr(value: Any) -> str:
    """Render a value roughly as Go's ``%#v``/``%q`` does in field error messages."""
    if hasattr(value, "go_repr"):
        return str(value.go_repr())
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return orjson.dumps(value).decode()
    if isinstance(value, int | float):
        return str(value)
    if value is None:
        return "null"
    if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
        inner = ", ".join(f"{orjson.dumps(k).decode()}:{orjson.dumps(v).decode()}" for k, v in value.items())
        return "map[string]string{" + inner + "}"
    return orjson.dumps(value).decode()


@dataclass(frozen=True, slots=True)
class FieldError:
    type: FieldErrorType
    field: str
    value: Any = _OMIT
    detail: str = ""
    supported: tuple[str, ...] = ()

    def message_body(self) -> str:
        """The text after the field path, e.g. ``Invalid value: "x": must be ...``."""
        t = self.type
        s = t.text
        if t in (FieldErrorType.REQUIRED, FieldErrorType.FORBIDDEN, FieldErrorType.TOO_LONG,
                 FieldErrorType.INTERNAL) or self.value is _OMIT:
            out = s
        else:
            out = f"{s}: {go_repr(self.value)}"
        if t is FieldErrorType.NOT_SUPPORTED and self.supported:
            quoted = ", ".join(orjson.dumps(x).decode() for x in self.supported)
            out += f": supported values: {quoted}"
        if self.detail:
            out += f": {self.detail}"
        return out

    def __str__(self) -> str:
        return f"{self.field}: {self.message_body()}" if self.field else self.message_body()

    def cause(self) -> dict[str, str]:
        return {"reason": self.type.value, "message": self.message_body(), "field": self.field}


# Constructors mirroring field.Required(...) etc.
def required(path: str, detail: str = "") -> FieldError:
    return FieldError(FieldErrorType.REQUIRED, path, detail=detail)


def invalid(path: str, value: Any, detail: str = "") -> FieldError:
    return FieldError(FieldErrorType.INVALID, path, value, detail)


def not_supported(path: str, value: Any, supported: list[str] | tuple[str, ...]) -> FieldError:
    return FieldError(FieldErrorType.NOT_SUPPORTED, path, value, supported=tuple(supported))


def forbidden(path: str, detail: str) -> FieldError:
    return FieldError(FieldErrorType.FORBIDDEN, path, detail=detail)


def duplicate(path: str, value: Any) -> FieldError:
    return FieldError(FieldErrorType.DUPLICATE, path, value)


def too_long(path: str, max_len: int) -> FieldError:
    return FieldError(FieldErrorType.TOO_LONG, path, detail=f"must have at most {max_len} bytes")


def too_many(path: str, actual: int, max_items: int) -> FieldError:
    return FieldError(FieldErrorType.TOO_MANY, path, actual, f"must have at most {max_items} items")


def not_found(path: str, value: Any) -> FieldError:
    return FieldError(FieldErrorType.NOT_FOUND, path, value)


class StatusError(Exception):
    """An error the API answers with a ``Status`` object."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def status(self) -> dict[str, Any]:
        # the field order of Go's metav1.Status, which clients comparing error text see
        st: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
        }
        if self.reason:  # kube leaves an empty reason out
            st["reason"] = self.reason
        if self.details is not None:
            st["details"] = self.details
        st["code"] = self.code
        return st


def _details(name: str | None, group: str, kind: str, causes: list[dict[str, str]] | None = None,
             retry_after: int | None = None) -> dict[str, Any]:
    d: dict[str, Any] = {}
    if name:
        d["name"] = name
    if group:
        d["group"] = group
    if kind:
        d["kind"] = kind
    if causes:
        d["causes"] = causes
    if retry_after:
        d["retryAfterSeconds"] = retry_after
    return d


def qualified(resource: str, group: str) -> str:
    """``deployments.apps`` / ``pods`` as Kubernetes words its messages."""
    return f"{resource}.{group}" if group else resource


def not_found_error(resource: str, group: str, name: str) -> StatusError:
    return StatusError(404, "NotFound", f'{qualified(resource, group)} "{name}" not found',
                       details=_details(name, group, resource))


def already_exists(resource: str, group: str, name: str) -> StatusError:
    return StatusError(409, "AlreadyExists", f'{qualified(resource, group)} "{name}" already exists',
                       details=_details(name, group, resource))


def conflict(resource: str, group: str, name: str, why: str) -> StatusError:
    return StatusError(409, "Conflict", f'Operation cannot be fulfilled on {qualified(resource, group)} "{name}": {why}',
                       details=_details(name, group, resource))


OPTIMISTIC_LOCK_MSG = "the object has been modified; please apply your changes to the latest version and try again"


def invalid_error(kind: str, group: str, name: str, errs: list[FieldError]) -> StatusError:
    """``Deployment.apps "x" is invalid: [a: Invalid value..., b: Required value]``."""
    qkind = f"{kind}.{group}" if group else kind
    if len(errs) == 1:
        agg = str(errs[0])
    else:
        agg = "[" + ", ".join(str(e) for e in errs) + "]"
    return StatusError(422, "Invalid", f'{qkind} "{name}" is invalid: {agg}',
                       details=_details(name, group, kind, [e.cause() for e in errs]))


def bad_request(message: str) -> StatusError:
    return StatusError(400, "BadRequest", message)


def method_not_allowed(message: str = "the server does not allow this method on the requested resource") -> StatusError:
    return StatusError(405, "MethodNotAllowed", message)


def forbidden_error(message: str, resource: str = "", group: str = "", name: str = "") -> StatusError:
    return StatusError(403, "Forbidden", message, details=_details(name, group, resource))


class RequestAttributes(Protocol):
    """What a forbidden request wanted (the API server's ``authz.RequestAttributes``, and an
    extension API server's own, such as metrics-server's)."""

    @property
    def verb(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def is_resource_request(self) -> bool: ...
    @property
    def api_group(self) -> str: ...
    @property
    def resource(self) -> str: ...
    @property
    def subresource(self) -> str: ...
    @property
    def namespace(self) -> str: ...
    @property
    def name(self) -> str: ...


def forbidden_message(user: str, attrs: RequestAttributes) -> str:
    """kube's ``forbiddenMessage``: ``User "alice" cannot get resource "pods/log" in API group ""
    in the namespace "default"`` / ``... at the cluster scope`` / ``... cannot get path "/x"``."""
    if not attrs.is_resource_request:
        return f'User "{user}" cannot {attrs.verb} path "{attrs.path}"'
    resource = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    scope = f' in the namespace "{attrs.namespace}"' if attrs.namespace else " at the cluster scope"
    return f'User "{user}" cannot {attrs.verb} resource "{resource}" in API group "{attrs.api_group}"{scope}'


def forbidden_request(user: str, attrs: RequestAttributes, reason: str = "") -> StatusError:
    """The 403 of kube's ``responsewriters.Forbidden``: ``NewForbidden(resource.group, name, msg)``."""
    msg = forbidden_message(user, attrs)
    if reason:
        msg += f": {reason}"
    if not attrs.is_resource_request:
        return forbidden_error(f"forbidden: {msg}")
    res = qualified(attrs.resource, attrs.api_group)
    prefix = f'{res} "{attrs.name}" is forbidden: ' if attrs.name else f"{res} is forbidden: "
    return forbidden_error(prefix + msg, attrs.resource, attrs.api_group, attrs.name)


def unauthorized() -> StatusError:
    return StatusError(401, "Unauthorized", "Unauthorized")


def gone(message: str) -> StatusError:
    return StatusError(410, "Expired", message)


def too_large(message: str = "Request entity too large: limit is 3145728") -> StatusError:
    return StatusError(413, "RequestEntityTooLarge", message)


def unsupported_media_type(ct: str) -> StatusError:
    return StatusError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/apply-patch+yaml, application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got {ct!r})")


def not_acceptable(message: str) -> StatusError:
    return StatusError(406, "NotAcceptable", message)


def internal_error(message: str) -> StatusError:
    return StatusError(500, "InternalError", f"Internal error occurred: {message}")


def service_unavailable(message: str) -> StatusError:
    return StatusError(503, "ServiceUnavailable", message)


def not_implemented(message: str) -> StatusError:
    return StatusError(501, "NotImplemented", message)


def timeout_error(message: str) -> StatusError:
    return StatusError(504, "Timeout", message)
