"""The one place that lists the client's exception hierarchy.

Every error answer of the API server is a ``metav1.Status``; :class:`ApiError` carries it whole
and subclasses name the reasons callers branch on, so ``except NotFoundError`` reads like
client-go's ``apierrors.IsNotFound(err)``.
"""

from __future__ import annotations

from typing import Any

import orjson

__all__ = [
    "AlreadyExistsError",
    "ApiError",
    "BadRequestError",
    "ConflictError",
    "ForbiddenError",
    "GoneError",
    "InternalError",
    "InvalidError",
    "MethodNotAllowedError",
    "NotFoundError",
    "ServerTimeoutError",
    "ServiceUnavailableError",
    "TooManyRequestsError",
    "UnauthorizedError",
    "api_error",
    "error_from_response",
]

Obj = dict[str, Any]


class ApiError(Exception):
    """An error answer of the API server; ``status`` is its ``metav1.Status``."""

    def __init__(self, status: Obj, code: int | None = None) -> None:
        self.status: Obj = status
        self.code: int = int(code if code is not None else status.get("code") or 0)
        self.reason: str = str(status.get("reason") or "")
        self.message: str = str(status.get("message") or "")
        super().__init__(f"{self.code} {self.reason or 'Unknown'}: {self.message}")

    @property
    def details(self) -> Obj:
        d = self.status.get("details")
        return d if isinstance(d, dict) else {}

    @property
    def retry_after(self) -> float | None:
        v = self.details.get("retryAfterSeconds")
        return float(v) if isinstance(v, int | float) else None


class BadRequestError(ApiError):
    """400 BadRequest."""


class UnauthorizedError(ApiError):
    """401 Unauthorized: no or wrong credentials."""


class ForbiddenError(ApiError):
    """403 Forbidden: authenticated but not allowed (or the namespace is terminating)."""


class NotFoundError(ApiError):
    """404 NotFound."""


class MethodNotAllowedError(ApiError):
    """405 MethodNotAllowed."""


class ConflictError(ApiError):
    """409 Conflict: the resourceVersion precondition failed (someone else wrote first)."""


class AlreadyExistsError(ApiError):
    """409 AlreadyExists: a create found the name taken."""


class GoneError(ApiError):
    """410 Gone/Expired: the resourceVersion was compacted away; list again."""


class InvalidError(ApiError):
    """422 Invalid: validation failed; ``details.causes`` say which fields."""


class TooManyRequestsError(ApiError):
    """429 TooManyRequests."""


class InternalError(ApiError):
    """500 InternalError."""


class ServiceUnavailableError(ApiError):
    """503 ServiceUnavailable."""


class ServerTimeoutError(ApiError):
    """504 / reason Timeout or ServerTimeout."""


_BY_REASON: dict[str, type[ApiError]] = {
    "BadRequest": BadRequestError,
    "Unauthorized": UnauthorizedError,
    "Forbidden": ForbiddenError,
    "NotFound": NotFoundError,
    "MethodNotAllowed": MethodNotAllowedError,
    "Conflict": ConflictError,
    "AlreadyExists": AlreadyExistsError,
    "Gone": GoneError,
    "Expired": GoneError,
    "Invalid": InvalidError,
    "TooManyRequests": TooManyRequestsError,
    "InternalError": InternalError,
    "ServiceUnavailable": ServiceUnavailableError,
    "Timeout": ServerTimeoutError,
    "ServerTimeout": ServerTimeoutError,
}
_BY_CODE: dict[int, type[ApiError]] = {
    400: BadRequestError, 401: UnauthorizedError, 403: ForbiddenError, 404: NotFoundError,
    405: MethodNotAllowedError, 409: ConflictError, 410: GoneError, 422: InvalidError,
    429: TooManyRequestsError, 500: InternalError, 503: ServiceUnavailableError, 504: ServerTimeoutError,
}
_REASON_FOR_CODE = {
    400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
    409: "Conflict", 410: "Gone", 422: "Invalid", 429: "TooManyRequests", 500: "InternalError",
    503: "ServiceUnavailable", 504: "Timeout",
}


def api_error(status: Obj, code: int | None = None) -> ApiError:
    """The most specific :class:`ApiError` for a ``Status`` (by reason, then by code)."""
    c = int(code if code is not None else status.get("code") or 0)
    cls = _BY_REASON.get(str(status.get("reason") or "")) or _BY_CODE.get(c) or ApiError
    return cls(status, c)


def error_from_response(code: int, body: bytes) -> ApiError:
    """An error for an HTTP answer; a body that is not a Status becomes the message of one."""
    try:
        doc = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        doc = None
    if isinstance(doc, dict) and doc.get("kind") == "Status":
        return api_error(doc, code)
    text = body.decode("utf-8", "replace").strip()[:1000] if body else ""
    return api_error({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
                      "reason": _REASON_FOR_CODE.get(code, ""),
                      "message": text or f"the server responded with HTTP {code}"}, code)
