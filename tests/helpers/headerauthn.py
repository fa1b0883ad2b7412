"""An authenticator for in-process API tests: the user named in the request's ``X-Test-User``
header (groups in ``X-Test-Groups``), so that RBAC is real and the identity is the test's."""

from __future__ import annotations

from aiohttp import web

from k8py.apiserver.authn import UserInfo


class HeaderAuthn:
    """Whoever the test says (X-Test-User, X-Test-Groups); no header: not authenticated."""

    def authenticate(self, request: web.Request) -> UserInfo | None:
        name = request.headers.get("X-Test-User")
        if not name:
            return None
        groups = tuple(g for g in request.headers.get("X-Test-Groups", "").split(",") if g)
        return UserInfo(name, groups=(*groups, "system:authenticated"))


def as_(user: str, *groups: str) -> dict[str, str]:
    """The headers that make a request ``user``'s, in ``groups``."""
    return {"X-Test-User": user, "X-Test-Groups": ",".join(groups)}
