"""Per-request context passed through the handler pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web
from multidict import MultiDictProxy

from k8py.apiserver.negotiate import Output, negotiate_output
from k8py.apiserver.requestinfo import RequestInfo

if TYPE_CHECKING:
    from k8py.apiserver.authn import UserInfo


@dataclass(slots=True)
class Ctx:
    request: web.Request
    info: RequestInfo
    user: UserInfo | None
    warnings: list[str] = field(default_factory=list)
    audit_annotations: dict[str, str] = field(default_factory=dict)  # for the audit log's event
    _output: Output | None = None

    @property
    def query(self) -> MultiDictProxy[str]:
        return self.request.query  # type: ignore[return-value]  # aiohttp's is a MultiDictProxy

    def q(self, name: str, default: str = "") -> str:
        return self.request.query.get(name, default)

    def output(self, allow_table: bool = True) -> Output:
        if self._output is None:
            self._output = negotiate_output(self.request.headers.get("Accept", ""), allow_table=allow_table)
        return self._output

    @property
    def user_agent(self) -> str:
        return self.request.headers.get("User-Agent", "")
