"""The audit log, as kube-apiserver's: ``--audit-policy-file`` (an ``audit.k8s.io/v1`` Policy)
says which requests are recorded at which level, ``--audit-log-path`` where the events go (one
JSON ``audit.k8s.io/v1`` Event a line; ``-`` for standard output), rotated by size as kube's
lumberjack does (``--audit-log-maxsize`` MB, ``--audit-log-maxbackup`` files,
``--audit-log-maxage`` days; a rotated file is ``<name>-<UTC time>.<ext>``).

Levels: ``None`` (nothing), ``Metadata`` (who, what, when, the answer's code), ``Request`` (and
the request's body), ``RequestResponse`` (and the response's body). Stages: ``RequestReceived``
(once the user is known, before authorization), ``ResponseStarted`` (long-running requests:
watches, exec, attach, port-forward, followed logs; when the headers are sent),
``ResponseComplete``, and ``Panic`` (an internal error). The first rule that matches the request
gives its level; none matching is level None. ``omitStages`` of the policy and the rule add up;
a rule's ``omitManagedFields`` overrides the policy's.

The request path only builds and encodes the event (a few microseconds): a writer thread takes
the lines from a buffer and writes them in batches, so a slow disk never holds a request.
At shutdown the buffer is written out.

Annotations: ``authorization.k8s.io/decision`` and ``authorization.k8s.io/reason`` (from the
authorizer), and whatever admission plugins put in the request's ``audit_annotations`` (Pod
Security's ``pod-security.kubernetes.io/audit-violations``).
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import glob
import logging
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from k8py.api.configfile import ConfigFileError, Located, load_located
from k8py.apiserver import requestinfo
from k8py.apiserver.options import BODY_KEY
from k8py.apiserver.requestinfo import RequestInfo

if TYPE_CHECKING:
    from k8py.apiserver.context import Ctx
    from k8py.config import ServerConfig

__all__ = ["AuditLog", "Policy", "RotatingWriter", "Rule", "from_config", "load_policy", "parse_policy"]

log = logging.getLogger("k8py.apiserver.audit")

API_VERSION = "audit.k8s.io/v1"
LEVELS = ("None", "Metadata", "Request", "RequestResponse")
STAGES = ("RequestReceived", "ResponseStarted", "ResponseComplete", "Panic")
WHAT = "--audit-policy-file"
FLUSH_SECONDS = 0.2  # the writer thread's longest wait before writing what is buffered
WAKE_AT = 1000  # events that wake the writer before its next FLUSH_SECONDS tick
MAX_BUFFERED = 100_000  # events kept when the disk cannot keep up; more are dropped (and counted)
LONG_RUNNING_SUBRESOURCES = ("exec", "attach", "portforward", "proxy")


# --------------------------------------------------------------------------- the policy


@dataclass(frozen=True, slots=True)
class GroupResources:
    group: str = ""
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Rule:
    level: str
    users: tuple[str, ...] = ()
    user_groups: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ()
    resources: tuple[GroupResources, ...] = ()
    namespaces: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()
    omit_stages: tuple[str, ...] = ()
    omit_managed_fields: bool | None = None

    def matches(self, a: Attributes) -> bool:
        """kube's policy checker ruleMatches."""
        if self.users and a.user not in self.users:
            return False
        if self.user_groups and not any(g in self.user_groups for g in a.groups):
            return False
        if self.verbs and a.verb not in self.verbs:
            return False
        if self.namespaces or self.resources:
            return a.is_resource and self._matches_resource(a)
        if self.non_resource_urls:
            return not a.is_resource and self._matches_url(a.path)
        return True

    def _matches_resource(self, a: Attributes) -> bool:
        if self.namespaces and a.namespace not in self.namespaces:
            return False
        if not self.resources:
            return True
        combined = f"{a.resource}/{a.subresource}" if a.subresource else a.resource
        for gr in self.resources:
            if gr.group != a.group:
                continue
            if not gr.resources:
                return True
            if gr.resource_names and a.name not in gr.resource_names:
                continue
            for res in gr.resources:
                if res == combined or res == "*":
                    return True
                if a.subresource and res.startswith("*/") and res[2:] == a.subresource:
                    return True
                if res.endswith("/*") and res[:-2] == a.resource:
                    return True
        return False

    def _matches_url(self, path: str) -> bool:
        for spec in self.non_resource_urls:
            if spec == "*" or spec == path or (spec.endswith("*") and path.startswith(spec[:-1])):
                return True
        return False


@dataclass(frozen=True, slots=True)
class Decision:
    level: str
    omit_stages: frozenset[str]
    omit_managed_fields: bool


NO_AUDIT = Decision("None", frozenset(), False)


@dataclass(frozen=True, slots=True)
class Policy:
    rules: tuple[Rule, ...]
    omit_stages: tuple[str, ...] = ()
    omit_managed_fields: bool = False

    # each rule's decision, made once (a request only picks one)
    decisions: tuple[Decision, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        out = []
        for r in self.rules:
            omf = self.omit_managed_fields if r.omit_managed_fields is None else r.omit_managed_fields
            out.append(NO_AUDIT if r.level == "None" else
                       Decision(r.level, frozenset(self.omit_stages) | frozenset(r.omit_stages), omf))
        object.__setattr__(self, "decisions", tuple(out))

    def decide(self, a: Attributes) -> Decision:
        for r, d in zip(self.rules, self.decisions, strict=True):
            if r.matches(a):
                return d
        return NO_AUDIT


@dataclass(slots=True)
class Attributes:
    """What the policy looks at, as kube's authorizer.Attributes."""

    user: str = ""
    groups: tuple[str, ...] = ()
    verb: str = ""
    is_resource: bool = False
    group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""


def _strings(loc: Located, path: tuple[Any, ...], value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise loc.error(path, "must be a list of strings")
    return tuple(value)


def _stages(loc: Located, path: tuple[Any, ...], value: Any) -> tuple[str, ...]:
    stages = _strings(loc, path, value)
    for i, s in enumerate(stages):
        if s not in STAGES:
            raise loc.error((*path, i), f'Unsupported value: "{s}": supported values: '
                                        + ", ".join(f'"{x}"' for x in STAGES))
    return stages


def _bool(loc: Located, path: tuple[Any, ...], value: Any) -> bool | None:
    if value is None:
        return None
    if not isinstance(value, bool):
        raise loc.error(path, f"must be true or false, not {value!r}")
    return value


_RULE_FIELDS = {"level", "users", "userGroups", "verbs", "resources", "namespaces", "nonResourceURLs",
                "omitStages", "omitManagedFields"}
_POLICY_FIELDS = {"apiVersion", "kind", "metadata", "rules", "omitStages", "omitManagedFields"}


def parse_policy(loc: Located) -> Policy:
    """Validate a loaded policy as kube's ValidatePolicy; errors name the line and field."""
    doc = loc.data
    if not isinstance(doc, dict):
        raise loc.error((), "must be an audit Policy object")
    if doc.get("kind") != "Policy" or doc.get("apiVersion") != API_VERSION:
        raise loc.error(("kind",) if doc.get("kind") != "Policy" else ("apiVersion",),
                        f"must be kind: Policy with apiVersion: {API_VERSION} "
                        f"(got kind {doc.get('kind')!r}, apiVersion {doc.get('apiVersion')!r})")
    for k in doc:
        if k not in _POLICY_FIELDS:
            raise loc.error((k,), f'unknown field "{k}"')
    rules_doc = doc.get("rules")
    if not isinstance(rules_doc, list) or not rules_doc:
        raise loc.error(("rules",), "Required value: a policy needs at least one rule (kube refuses a policy "
                                    "with 0 rules)")
    rules = []
    for i, r in enumerate(rules_doc):
        rp: tuple[Any, ...] = ("rules", i)
        if not isinstance(r, dict):
            raise loc.error(rp, "must be an object with a level")
        for k in r:
            if k not in _RULE_FIELDS:
                raise loc.error((*rp, k), f'unknown field "{k}"')
        level = r.get("level")
        if level is None or level == "":
            raise loc.error((*rp, "level"), "Required value: level is required")
        if level not in LEVELS:
            raise loc.error((*rp, "level"), f'Unsupported value: "{level}": supported values: '
                                            + ", ".join(f'"{x}"' for x in LEVELS))
        resources = []
        for j, gr in enumerate(r.get("resources") or []):
            gp = (*rp, "resources", j)
            if not isinstance(gr, dict):
                raise loc.error(gp, "must be an object with group, resources and resourceNames")
            group = gr.get("group") or ""
            if not isinstance(group, str):
                raise loc.error((*gp, "group"), "must be a string")
            names = _strings(loc, (*gp, "resources"), gr.get("resources"))
            rnames = _strings(loc, (*gp, "resourceNames"), gr.get("resourceNames"))
            for k, n in enumerate(names):
                if n and "/" in n and not (n.startswith("*/") or n.endswith("/*") or n.count("/") == 1):
                    raise loc.error((*gp, "resources", k), f'Invalid value: "{n}": invalid resource')
                if rnames and ("*" in n):
                    raise loc.error((*gp, "resourceNames"), "Invalid value: resourceNames with a wildcard "
                                                            "resource is not allowed")
            resources.append(GroupResources(group, names, rnames))
        urls = _strings(loc, (*rp, "nonResourceURLs"), r.get("nonResourceURLs"))
        for k, u in enumerate(urls):
            if u != "*" and not u.startswith("/"):
                raise loc.error((*rp, "nonResourceURLs", k), f'Invalid value: "{u}": non-resource URL rules must '
                                                             "begin with a '/' character")
            if "*" in u[:-1]:
                raise loc.error((*rp, "nonResourceURLs", k), f'Invalid value: "{u}": non-resource URL wildcards '
                                                             "('*') must be the final character of the rule")
        namespaces = _strings(loc, (*rp, "namespaces"), r.get("namespaces"))
        if urls and (resources or namespaces):
            raise loc.error((*rp, "nonResourceURLs"), "Invalid value: rules cannot apply to both regular resources "
                                                      "and non-resource URLs")
        rules.append(Rule(
            level=level, users=_strings(loc, (*rp, "users"), r.get("users")),
            user_groups=_strings(loc, (*rp, "userGroups"), r.get("userGroups")),
            verbs=_strings(loc, (*rp, "verbs"), r.get("verbs")), resources=tuple(resources),
            namespaces=namespaces, non_resource_urls=urls,
            omit_stages=_stages(loc, (*rp, "omitStages"), r.get("omitStages")),
            omit_managed_fields=_bool(loc, (*rp, "omitManagedFields"), r.get("omitManagedFields"))))
    return Policy(tuple(rules), _stages(loc, ("omitStages",), doc.get("omitStages")),
                  bool(_bool(loc, ("omitManagedFields",), doc.get("omitManagedFields"))))


def load_policy(file: str) -> Policy:
    return parse_policy(load_located(file, WHAT))


# --------------------------------------------------------------------------- the writer


def backup_name(path: str, when: dt.datetime) -> str:
    """lumberjack's name for a rotated file: ``audit.log`` -> ``audit-2026-12-06T18-30-00.123.log``."""
    d, base = os.path.split(path)
    stem, ext = os.path.splitext(base)
    stamp = when.strftime("%Y-%m-%dT%H-%M-%S.") + f"{when.microsecond // 1000:03d}"
    return os.path.join(d, f"{stem}-{stamp}{ext}")


def _backup_time(path: str, name: str) -> dt.datetime | None:
    stem, ext = os.path.splitext(os.path.basename(path))
    base = os.path.basename(name)
    if not (base.startswith(stem + "-") and base.endswith(ext)):
        return None
    stamp = base[len(stem) + 1:len(base) - len(ext)]
    try:
        return dt.datetime.strptime(stamp, "%Y-%m-%dT%H-%M-%S.%f").replace(tzinfo=dt.UTC)
    except ValueError:
        return None


class RotatingWriter:
    """Lines to a file, rotated by size as lumberjack (kube's audit log writer) does: a write that
    would take the file past ``max_bytes`` first moves it aside under a timestamped name; then the
    oldest backups beyond ``max_backups`` and those older than ``max_age_days`` are removed."""

    def __init__(self, path: str, max_bytes: int = 0, max_backups: int = 0, max_age_days: int = 0,
                 now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.max_backups = max_backups
        self.max_age_days = max_age_days
        self.now = now
        self._f: Any = None
        self._size = 0

    def open(self) -> None:
        if self.path == "-":
            self._f = sys.stdout.buffer
            return
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        self._f = open(self.path, "ab")  # noqa: SIM115 - kept open for the writer's life
        os.chmod(self.path, 0o600)
        self._size = self._f.tell()

    def write(self, data: bytes) -> None:
        """Write whole lines (``data`` ends with a newline), rotating between lines as needed."""
        if self._f is None:
            self.open()
        if self.path == "-" or not self.max_bytes:
            self._f.write(data)
            self._size += len(data)
            return
        start = 0
        while start < len(data):
            room = self.max_bytes - self._size
            end = data.rfind(b"\n", start, start + room) + 1 if room > 0 else 0
            if end <= start:  # not even one more line fits
                if self._size:
                    self.rotate()
                    continue
                end = data.find(b"\n", start) + 1 or len(data)  # one line larger than the limit: alone
            self._f.write(data[start:end])
            self._size += end - start
            start = end

    def flush(self) -> None:
        if self._f is not None:
            self._f.flush()

    def rotate(self) -> None:
        self._f.close()
        when = self.now()
        target = backup_name(self.path, when)
        while os.path.exists(target):
            when += dt.timedelta(milliseconds=1)
            target = backup_name(self.path, when)
        os.rename(self.path, target)
        self._f = open(self.path, "ab")  # noqa: SIM115 - kept open for the writer's life
        os.chmod(self.path, 0o600)
        self._size = 0
        self.remove_old()

    def backups(self) -> list[tuple[dt.datetime, str]]:
        stem, ext = os.path.splitext(self.path)
        found = []
        for name in glob.glob(glob.escape(stem) + "-*" + glob.escape(ext)):
            t = _backup_time(self.path, name)
            if t is not None:
                found.append((t, name))
        return sorted(found, reverse=True)  # newest first

    def remove_old(self) -> None:
        old = self.backups()
        drop: list[str] = []
        if self.max_backups:
            drop += [n for _, n in old[self.max_backups:]]
        if self.max_age_days:
            cutoff = self.now() - dt.timedelta(days=self.max_age_days)
            drop += [n for t, n in old if t < cutoff]
        for n in set(drop):
            try:
                os.unlink(n)
            except OSError as e:
                log.warning("cannot remove old audit log %s: %s", n, e)

    def close(self) -> None:
        if self._f is not None and self.path != "-":
            self._f.close()
        elif self._f is not None:
            self._f.flush()
        self._f = None


class BufferedWriter:
    """Off the request path: ``put`` appends a line to a buffer; a thread writes the buffer out."""

    def __init__(self, out: RotatingWriter) -> None:
        self.out = out
        self._buf: collections.deque[bytes] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        self.dropped = 0

    def start(self) -> None:
        self.out.open()
        self._thread = threading.Thread(target=self._run, name="audit-log-writer", daemon=True)
        self._thread.start()

    def put(self, line: bytes) -> None:
        buf = self._buf
        if len(buf) >= MAX_BUFFERED:
            self.dropped += 1
            return
        buf.append(line)
        # No wake-up per event (a thread switch and a write per request cost more than the event):
        # the writer wakes every FLUSH_SECONDS, or at once when a large batch is waiting.
        if len(buf) == WAKE_AT:
            with self._cond:
                self._cond.notify()

    def _run(self) -> None:
        buf = self._buf
        while True:
            with self._cond:
                if len(buf) < WAKE_AT and not self._closed:
                    self._cond.wait(FLUSH_SECONDS)
                closed = self._closed
            lines = []
            while buf:
                lines.append(buf.popleft())
            if lines:
                try:
                    self.out.write(b"".join(lines))
                    self.out.flush()
                except OSError as e:
                    log.error("cannot write the audit log %s: %s (%d events lost)", self.out.path, e, len(lines))
            if closed and not buf:
                break

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(10)
        self.out.close()
        if self.dropped:
            log.error("the audit log dropped %d events: the disk did not keep up", self.dropped)


# --------------------------------------------------------------------------- events


class MicroTime:
    """metav1.MicroTime (``2006-01-02T15:04:05.000000Z``), the whole second formatted once:
    strftime costs more than the rest of an event."""

    __slots__ = ("_sec", "_text")

    def __init__(self) -> None:
        self._sec = -1
        self._text = ""

    def __call__(self, t: float) -> str:
        sec = int(t)
        if sec != self._sec:
            self._text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
            self._sec = sec
        return f"{self._text}.{int((t - sec) * 1_000_000):06d}Z"


def new_audit_id() -> str:
    """A random (version 4) UUID, as kube's, without uuid.UUID's cost."""
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _user(u: Any) -> dict[str, Any]:
    return {} if u is None else u.to_api()  # type: ignore[no-any-return]


def _parse_body(raw: bytes, content_type: str) -> Any:
    if not raw:
        return None
    try:
        if "protobuf" in content_type:
            from k8py.api import protobuf

            return protobuf.decode(raw)
        if "yaml" in content_type:
            import yaml

            return yaml.safe_load(raw)
        return orjson.loads(raw)
    except Exception:  # noqa: BLE001 - a body that does not parse is left out of the event
        return None


def _strip_managed_fields(obj: Any) -> Any:
    if isinstance(obj, dict):
        meta = obj.get("metadata")
        if isinstance(meta, dict) and "managedFields" in meta:
            obj = {**obj, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}
        items = obj.get("items")
        if isinstance(items, list):
            obj = {**obj, "items": [_strip_managed_fields(i) for i in items]}
    return obj


@dataclass(slots=True)
class _Request:
    """The audit state of one request (kept on the aiohttp request)."""

    decision: Decision
    event: dict[str, Any]
    received: float
    ctx: Ctx | None = None
    started_sent: bool = False
    panic: BaseException | None = None


AUDIT_KEY = web.RequestKey("k8py.audit", _Request)


def attributes(info: RequestInfo, user: Any) -> Attributes:
    i, u = info, user
    return Attributes(user=u.name if u else "", groups=tuple(u.groups) if u else (), verb=i.verb,
                      is_resource=i.is_resource_request, group=i.group, resource=i.resource,
                      subresource=i.subresource, namespace=i.namespace, name=i.name, path=i.path)


class AuditLog:
    """The policy and the log backend; the API server's dispatch calls :meth:`serve` around
    every request and :meth:`received` once the user is known."""

    def __init__(self, policy: Policy, writer: BufferedWriter) -> None:
        self.policy = policy
        self.writer = writer
        self.micro_time = MicroTime()

    def start(self) -> None:
        self.writer.start()

    async def close(self) -> None:
        self.writer.close()

    def install(self, app: web.Application) -> None:
        app.on_response_prepare.append(self._on_prepare)

    # -- stages ----------------------------------------------------------------------------------
    def _new(self, request: web.Request, ctx: Ctx | None, received: float, requester: Any = None) -> _Request:
        # a request that never got its user (401, the public health paths) is judged by its path
        # all the same, as kube's request info is made before authentication
        info = ctx.info if ctx is not None else requestinfo.parse(request.path, request.method,
                                                                  request.query)  # type: ignore[arg-type]
        decision = self.policy.decide(attributes(info, ctx.user if ctx is not None else None))
        ev: dict[str, Any] = {"kind": "Event", "apiVersion": API_VERSION, "level": decision.level,
                              "auditID": request.headers.get("Audit-ID") or new_audit_id(), "stage": "",
                              "requestURI": request.path_qs}
        ev["verb"] = info.verb
        if ctx is not None:
            if requester is not None and ctx.user is not None and requester is not ctx.user:
                ev["user"] = _user(requester)  # kube: the user who asked, and whom they act as
                ev["impersonatedUser"] = _user(ctx.user)
            else:
                ev["user"] = _user(ctx.user)
        else:
            ev["user"] = {}
        ev["sourceIPs"] = _source_ips(request)
        ua = request.headers.get("User-Agent")
        if ua:
            ev["userAgent"] = ua
        if info.is_resource_request:
            i = info
            ref: dict[str, Any] = {"resource": i.resource}
            if i.namespace:
                ref["namespace"] = i.namespace
            if i.name:
                ref["name"] = i.name
            if i.group:
                ref["apiGroup"] = i.group
            if i.version:
                ref["apiVersion"] = i.version
            if i.subresource:
                ref["subresource"] = i.subresource
            ev["objectRef"] = ref
        ev["requestReceivedTimestamp"] = self.micro_time(received)
        state = _Request(decision, ev, received, ctx)
        request[AUDIT_KEY] = state
        return state

    def _emit(self, state: _Request, stage: str, extra: dict[str, Any] | None = None) -> None:
        if stage in state.decision.omit_stages:
            return
        ev = state.event | {"stage": stage}
        if extra:
            ev |= extra
        ev["stageTimestamp"] = self.micro_time(time.time())
        ctx = state.ctx
        if ctx is not None and ctx.audit_annotations:
            ev["annotations"] = dict(ctx.audit_annotations)
        self.writer.put(orjson.dumps(ev) + b"\n")

    def received(self, ctx: Ctx, requester: Any) -> None:
        """RequestReceived: called by dispatch once the request's user (``ctx.user``, whom
        ``requester`` may impersonate) is known."""
        request = ctx.request
        state = request.get(AUDIT_KEY)
        received = state.received if state is not None else time.time()
        state = self._new(request, ctx, received, requester)
        if state.decision.level != "None":
            self._emit(state, "RequestReceived")

    async def _on_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        state = request.get(AUDIT_KEY)
        if state is None:
            return
        response.headers["Audit-Id"] = state.event["auditID"]
        if state.decision.level == "None" or state.started_sent or not _long_running(state.ctx, request):
            return
        state.started_sent = True
        self._emit(state, "ResponseStarted", {"responseStatus": {"metadata": {}, "code": response.status}})

    def panicked(self, request: web.Request, e: BaseException) -> None:
        """The request failed with an unexpected error (dispatch answers 500): the Panic stage."""
        state = request.get(AUDIT_KEY)
        if state is not None:
            state.panic = e

    async def serve(self, request: web.Request,
                    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        received = time.time()
        request[AUDIT_KEY] = _Request(NO_AUDIT, {}, received)  # until dispatch knows the user
        try:
            resp = await handler(request)
        except web.HTTPException as e:
            self._finish(request, received, None, e.status)
            raise
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as e:
            self.panicked(request, e)
            self._finish(request, received, None, 500)
            raise
        self._finish(request, received, resp, resp.status)
        return resp

    def _finish(self, request: web.Request, received: float, resp: web.StreamResponse | None, code: int) -> None:
        state = request.get(AUDIT_KEY)
        if state is not None and not state.event:  # no user known (401, public path): judge now
            state = self._new(request, None, received)
        if state is None or state.decision.level == "None":
            return
        try:
            if state.panic is not None:
                self._emit(state, "Panic", {"responseStatus": {
                    "metadata": {}, "status": "Failure", "message": f"APIServer panic'd: {state.panic!r}",
                    "reason": "InternalError", "code": 500}})
            else:
                self._complete(state, request, resp, code)
        except Exception as e:  # noqa: BLE001 - the audit log must never fail the request
            log.warning("cannot write an audit event for %s %s: %s", request.method, request.path, e)

    def _complete(self, state: _Request, request: web.Request, resp: web.StreamResponse | None, code: int) -> None:
        level = state.decision.level
        extra: dict[str, Any] = {}
        ct = resp.headers.get("Content-Type", "") if resp is not None else ""
        body = resp.body if isinstance(resp, web.Response) else None
        raw_body = body if isinstance(body, bytes) else None
        status: dict[str, Any] = {"metadata": {}, "code": code}
        if raw_body is not None and (code >= 400 or raw_body[:40].find(b'"Status"') >= 0) and "json" in ct:
            st = _parse_body(raw_body, ct)
            if isinstance(st, dict) and st.get("kind") == "Status":
                for k in ("status", "message", "reason", "details"):
                    if st.get(k) not in (None, "", {}):
                        status[k] = st[k]
        extra["responseStatus"] = status
        ref = state.event.get("objectRef")
        request_obj = None
        req_raw = request.get(BODY_KEY)  # options.read_body keeps the request's body there
        if isinstance(req_raw, bytes) and req_raw and (level != "Metadata" or (ref is not None and "name" not in ref)):
            request_obj = _parse_body(req_raw, request.headers.get("Content-Type", ""))
        if ref is not None and "name" not in ref and isinstance(request_obj, dict):
            meta = request_obj.get("metadata") or {}
            if isinstance(meta, dict) and meta.get("name"):
                extra["objectRef"] = {**ref, "name": meta["name"]}
        omf = state.decision.omit_managed_fields
        if level in ("Request", "RequestResponse") and request_obj is not None:
            extra["requestObject"] = _strip_managed_fields(request_obj) if omf else request_obj
        if level == "RequestResponse" and raw_body is not None and ("json" in ct or "protobuf" in ct):
            resp_obj = _parse_body(raw_body, ct)
            if resp_obj is not None:
                extra["responseObject"] = _strip_managed_fields(resp_obj) if omf else resp_obj
        self._emit(state, "ResponseComplete", extra)


def _source_ips(request: web.Request) -> list[str]:
    """kube's SourceIPs: X-Forwarded-For, then X-Real-Ip, then the peer."""
    out: list[str] = []
    fwd = request.headers.get("X-Forwarded-For")
    if fwd:
        out += [p.strip() for p in fwd.split(",") if p.strip()]
    real = request.headers.get("X-Real-Ip")
    if real and real.strip() not in out:
        out.append(real.strip())
    remote = request.remote
    if remote and remote not in out:
        out.append(remote)
    return out


def _long_running(ctx: Ctx | None, request: web.Request) -> bool:
    if ctx is None:
        return False
    i = ctx.info
    if i.verb == "watch" or i.subresource in LONG_RUNNING_SUBRESOURCES:
        return True
    return i.subresource == "log" and request.query.get("follow") in ("true", "1")


def from_config(config: ServerConfig) -> AuditLog | None:
    """The audit log the flags ask for, or None; raises ConfigFileError for a bad policy or a
    log file that cannot be opened."""
    if not config.audit_policy_file:
        return None
    policy = load_policy(config.audit_policy_file)
    out = RotatingWriter(config.audit_log_path or "-", config.audit_log_maxsize * 1024 * 1024,
                         config.audit_log_maxbackup, config.audit_log_maxage)
    if out.path != "-":
        try:
            os.makedirs(os.path.dirname(out.path) or ".", exist_ok=True)
            with open(out.path, "ab"):
                pass
        except OSError as e:
            raise ConfigFileError(f"--audit-log-path {out.path}: cannot open it: {e.strerror or e}") from None
    log.info("audit log: policy %s (%d rules) to %s%s", config.audit_policy_file, len(policy.rules),
             "standard output" if out.path == "-" else out.path,
             f", rotated at {config.audit_log_maxsize} MB" if config.audit_log_maxsize else "")
    return AuditLog(policy, BufferedWriter(out))
