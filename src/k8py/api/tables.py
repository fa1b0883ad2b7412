"""Server-side printing: ``meta.k8s.io/v1`` ``Table`` and ``PartialObjectMetadata``.

``kubectl get`` asks for ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io``
and prints whatever columns the server sends; ``-o wide`` shows the
priority-1 columns too. The columns and cell values here follow kube's
printers (``pkg/printers/internalversion/printers.go``) kind by kind; like
kube-apiserver (``printers/storage.TableConvertor``) every row carries the
wide cells and kubectl hides what it does not show. Kinds without a printer
get kube's default table (``Name``, ``Created At``).

Metadata-only clients (client-go's metadata informers: the garbage collector,
the namespace deleter) ask for ``as=PartialObjectMetadata`` /
``as=PartialObjectMetadataList``; kubectl's get/delete do not.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from k8py.api import conversion
from k8py.api.errors import bad_request
from k8py.api.schema import definitions
from k8py.api.selectors import SelectorError, format_label_selector, format_labels, from_label_selector

Obj = dict[str, Any]
Cell = str | int | bool | None

TABLE_GROUP_VERSION: Final = "meta.k8s.io/v1"
INCLUDE_OBJECT_VALUES: Final = ("None", "Metadata", "Object")

# ---------------------------------------------------------------------------
# time formatting (k8s.io/apimachinery/pkg/util/duration)


def human_duration(d: timedelta) -> str:
    """``duration.HumanDuration``: ~2-3 significant figures, e.g. ``"5s"``, ``"3h5m"``, ``"2d3h"``."""
    micros = d // timedelta(microseconds=1)
    seconds = int(micros / 1_000_000)  # Go truncates towards zero
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 60 * 2:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        s = seconds % 60
        return f"{minutes}m" if s == 0 else f"{minutes}m{s}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = seconds // 3600
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if dy == 0 else f"{hours // 24 // 365}y{dy}d"
    return f"{hours // 24 // 365}y"


@functools.lru_cache(maxsize=8192)
def parse_time(value: str) -> datetime | None:
    """RFC 3339 ``Time``/``MicroTime`` -> aware datetime (``None`` if empty or unparsable)."""
    if not value:
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        return None
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def _time(value: Any) -> datetime | None:
    return parse_time(value) if isinstance(value, str) and value else None


def since(value: Any, now: datetime) -> str:
    """``translateTimestampSince``: the age of a timestamp, ``"<unknown>"`` when unset."""
    t = _time(value)
    if t is None:
        return "<unknown>"
    return human_duration(now - t)


# ---------------------------------------------------------------------------
# column definitions


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: str = "string"
    # literal description, or (OpenAPI definition, property) whose description kube's SwaggerDoc gives
    doc: str | tuple[str, str] = ""
    priority: int = 0
    format: str = ""

    def definition(self) -> Obj:
        return {"name": self.name, "type": self.type, "format": self.format,
                "description": _describe(self.doc), "priority": self.priority}


def _describe(doc: str | tuple[str, str]) -> str:
    if isinstance(doc, str):
        return doc
    return _schema_doc(*doc)


@functools.cache
def _schema_doc(definition: str, prop: str) -> str:
    try:
        d = definitions().get(definition) or {}
    except (ImportError, OSError):  # descriptions are cosmetic; never fail a table over them
        return ""
    desc = ((d.get("properties") or {}).get(prop) or {}).get("description")
    return desc if isinstance(desc, str) else ""


_META: Final = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
_CORE: Final = "io.k8s.api.core.v1."
_APPS: Final = "io.k8s.api.apps.v1."
_BATCH: Final = "io.k8s.api.batch.v1."

NAME: Final = Column("Name", format="name", doc=(_META, "name"))
AGE: Final = Column("Age", doc=(_META, "creationTimestamp"))
CONTAINERS: Final = Column("Containers", priority=1, doc="Names of each container in the template.")
IMAGES: Final = Column("Images", priority=1, doc="Images referenced by each container in the template.")


def _sel(definition: str) -> Column:
    return Column("Selector", priority=1, doc=(definition, "selector"))


# ---------------------------------------------------------------------------
# printers


@dataclass(frozen=True, slots=True)
class Printer:
    columns: tuple[Column, ...]
    cells: Callable[[Obj, datetime], list[Cell]]
    # row conditions (pods report Completed for terminal phases)
    conditions: Callable[[Obj], list[Obj]] | None = None
    # the form the printer reads (kube prints the internal type: v2 HPAs, core Events)
    view: Callable[[Obj], Obj] | None = None


@functools.cache
def _column_definitions(columns: tuple[Column, ...]) -> tuple[Obj, ...]:
    # computed once per printer: descriptions come from the OpenAPI schema
    return tuple(c.definition() for c in columns)


def _m(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _name(obj: Obj) -> str:
    return _m(obj).get("name", "")


def _age(obj: Obj, now: datetime) -> str:
    return since(_m(obj).get("creationTimestamp"), now)


def _spec(obj: Obj) -> Obj:
    return obj.get("spec") or {}


def _status(obj: Obj) -> Obj:
    return obj.get("status") or {}


def _int(v: Any) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) else 0


def _layout_containers(pod_spec: Obj | None) -> tuple[str, str]:
    containers = (pod_spec or {}).get("containers") or []
    return (",".join(c.get("name", "") for c in containers), ",".join(c.get("image", "") for c in containers))


def _template_spec(obj: Obj) -> Obj:
    return ((_spec(obj).get("template") or {}).get("spec")) or {}


def _qty(v: Any) -> str:
    # resource.Quantity.String(); a missing quantity is the zero quantity
    if v is None or v == "":
        return "0"
    return str(v)


def _print_bool_ptr(v: Any) -> str:
    if v is None:
        return "<unset>"
    return "True" if v else "False"


# --- pods ---

def _is_restartable_init(container: Obj | None) -> bool:
    return container is not None and container.get("restartPolicy") == "Always"


def _condition_true(conditions: Iterable[Obj], type_: str) -> bool:
    for c in conditions:
        if c.get("type") == type_:
            return c.get("status") == "True"
    return False


def _later(a: datetime | None, b: Any) -> datetime | None:
    t = _time(b)
    if t is None:
        return a
    return t if a is None or a < t else a


def _pod_cells(pod: Obj, now: datetime) -> list[Cell]:
    spec = _spec(pod)
    status = _status(pod)
    meta = _m(pod)
    conditions = status.get("conditions") or []
    restarts = 0
    restartable_init_restarts = 0
    total = len(spec.get("containers") or [])
    ready = 0
    last_restart: datetime | None = None
    last_restartable_init_restart: datetime | None = None

    phase = status.get("phase") or ""
    reason = status.get("reason") or phase
    for c in conditions:
        if c.get("type") == "PodScheduled" and c.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    init_specs = spec.get("initContainers") or []
    init_by_name = {c.get("name"): c for c in init_specs}
    total += sum(1 for c in init_specs if _is_restartable_init(c))

    initializing = False
    for i, cs in enumerate(status.get("initContainerStatuses") or []):
        rc = _int(cs.get("restartCount"))
        restarts += rc
        last_term = (cs.get("lastState") or {}).get("terminated")
        if last_term is not None:
            last_restart = _later(last_restart, last_term.get("finishedAt"))
        restartable = _is_restartable_init(init_by_name.get(cs.get("name")))
        if restartable:
            restartable_init_restarts += rc
            if last_term is not None:
                last_restartable_init_restart = _later(last_restartable_init_restart, last_term.get("finishedAt"))
        state = cs.get("state") or {}
        term = state.get("terminated")
        waiting = state.get("waiting")
        if term is not None and _int(term.get("exitCode")) == 0:
            continue
        if restartable and cs.get("started") is True:
            if cs.get("ready"):
                ready += 1
            continue
        if term is not None:
            # initialization failed
            if not term.get("reason"):
                if _int(term.get("signal")) != 0:
                    reason = f"Init:Signal:{_int(term.get('signal'))}"
                else:
                    reason = f"Init:ExitCode:{_int(term.get('exitCode'))}"
            else:
                reason = "Init:" + term["reason"]
        elif waiting is not None and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{i}/{len(init_specs)}"
        initializing = True
        break

    if not initializing or _condition_true(conditions, "Initialized"):
        restarts = restartable_init_restarts
        last_restart = last_restartable_init_restart
        has_running = False
        error_reason = ""
        for cs in reversed(status.get("containerStatuses") or []):
            restarts += _int(cs.get("restartCount"))
            last_term = (cs.get("lastState") or {}).get("terminated")
            if last_term is not None:
                last_restart = _later(last_restart, last_term.get("finishedAt"))
            state = cs.get("state") or {}
            waiting = state.get("waiting")
            term = state.get("terminated")
            if waiting is not None and waiting.get("reason"):
                reason = waiting["reason"]
            elif term is not None:
                if term.get("reason"):
                    reason = term["reason"]
                elif _int(term.get("signal")) != 0:
                    reason = f"Signal:{_int(term.get('signal'))}"
                else:
                    reason = f"ExitCode:{_int(term.get('exitCode'))}"
                if _int(term.get("exitCode")) != 0:
                    error_reason = reason
            elif cs.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        # a "Completed" container with another still running is a partial completion
        if reason == "Completed":
            if has_running and _condition_true_any(conditions, "Ready"):
                reason = "Running"
            elif error_reason:
                reason = error_reason
            elif has_running:
                reason = "NotReady"

    if meta.get("deletionTimestamp") and status.get("reason") == "NodeLost":
        reason = "Unknown"
    elif meta.get("deletionTimestamp") and phase not in ("Succeeded", "Failed"):
        reason = "Terminating"

    restarts_str = str(restarts)
    if restarts != 0 and last_restart is not None:
        restarts_str = f"{restarts} ({human_duration(now - last_restart)} ago)"

    pod_ip = ""
    ips = status.get("podIPs") or []
    if ips and isinstance(ips[0], dict):
        pod_ip = ips[0].get("ip") or ""
    if not pod_ip:
        pod_ip = status.get("podIP") or ""
    gates = spec.get("readinessGates") or []
    readiness_gates = "<none>"
    if gates:
        true_count = 0
        for g in gates:
            for c in conditions:
                if c.get("type") == g.get("conditionType"):
                    if c.get("status") == "True":
                        true_count += 1
                    break
        readiness_gates = f"{true_count}/{len(gates)}"
    return [
        meta.get("name", ""), f"{ready}/{total}", reason, restarts_str, since(meta.get("creationTimestamp"), now),
        pod_ip or "<none>", spec.get("nodeName") or "<none>", status.get("nominatedNodeName") or "<none>",
        readiness_gates,
    ]


def _condition_true_any(conditions: Iterable[Obj], type_: str) -> bool:
    # hasPodReadyCondition: any condition of the type with status True
    return any(c.get("type") == type_ and c.get("status") == "True" for c in conditions)


_POD_SUCCEEDED: Final = [{"type": "Completed", "status": "True", "reason": "Succeeded",
                          "message": "The pod has completed successfully."}]
_POD_FAILED: Final = [{"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}]


def _pod_conditions(pod: Obj) -> list[Obj]:
    phase = _status(pod).get("phase")
    if phase == "Succeeded":
        return _POD_SUCCEEDED
    if phase == "Failed":
        return _POD_FAILED
    return []


# --- workloads ---

def _deployment_cells(obj: Obj, now: datetime) -> list[Cell]:
    spec, status = _spec(obj), _status(obj)
    try:
        selector = str(from_label_selector(spec.get("selector")))
    except SelectorError:
        selector = "<invalid>"
    names, images = _layout_containers(_template_spec(obj))
    return [_name(obj), f"{_int(status.get('readyReplicas'))}/{_int(spec.get('replicas', 1))}",
            _int(status.get("updatedReplicas")), _int(status.get("availableReplicas")), _age(obj, now),
            names, images, selector]


def _replicaset_cells(obj: Obj, now: datetime) -> list[Cell]:
    spec, status = _spec(obj), _status(obj)
    names, images = _layout_containers(_template_spec(obj))
    return [_name(obj), _int(spec.get("replicas", 1)), _int(status.get("replicas")),
            _int(status.get("readyReplicas")), _age(obj, now), names, images,
            format_label_selector(spec.get("selector"))]


def _rc_cells(obj: Obj, now: datetime) -> list[Cell]:
    spec, status = _spec(obj), _status(obj)
    names, images = _layout_containers(_template_spec(obj))
    return [_name(obj), _int(spec.get("replicas", 1)), _int(status.get("replicas")),
            _int(status.get("readyReplicas")), _age(obj, now), names, images, format_labels(spec.get("selector"))]


def _statefulset_cells(obj: Obj, now: datetime) -> list[Cell]:
    spec, status = _spec(obj), _status(obj)
    names, images = _layout_containers(_template_spec(obj))
    return [_name(obj), f"{_int(status.get('readyReplicas'))}/{_int(spec.get('replicas', 1))}", _age(obj, now),
            names, images]


def _daemonset_cells(obj: Obj, now: datetime) -> list[Cell]:
    spec, status = _spec(obj), _status(obj)
    names, images = _layout_containers(_template_spec(obj))
    return [_name(obj), _int(status.get("desiredNumberScheduled")), _int(status.get("currentNumberScheduled")),
            _int(status.get("numberReady")), _int(status.get("updatedNumberScheduled")),
            _int(status.get("numberAvailable")), format_labels(_template_spec(obj).get("nodeSelector")),
            _age(obj, now), names, images, format_label_selector(spec.get("selector"))]


def _job_status(obj: Obj) -> str:
    conds = _status(obj).get("conditions") or []
    if _condition_true(conds, "Complete"):
        return "Complete"
    if _condition_true(conds, "Failed"):
        return "Failed"
    if _m(obj).get("deletionTimestamp"):
        return "Terminating"
    if _condition_true(conds, "Suspended"):
        return "Suspended"
    if _condition_true(conds, "FailureTarget"):
        return "FailureTarget"
    if _condition_true(conds, "SuccessCriteriaMet"):
        return "SuccessCriteriaMet"
    return "Running"


def _job_cells(obj: Obj, now: datetime) -> list[Cell]:
    spec, status = _spec(obj), _status(obj)
    succeeded = _int(status.get("succeeded"))
    if spec.get("completions") is not None:
        completions = f"{succeeded}/{_int(spec['completions'])}"
    else:
        parallelism = _int(spec.get("parallelism"))
        completions = f"{succeeded}/1 of {parallelism}" if parallelism > 1 else f"{succeeded}/1"
    start = _time(status.get("startTime"))
    end = _time(status.get("completionTime"))
    if start is None:
        duration = ""
    elif end is None:
        duration = human_duration(now - start)
    else:
        duration = human_duration(end - start)
    names, images = _layout_containers(_template_spec(obj))
    return [_name(obj), _job_status(obj), completions, duration, _age(obj, now), names, images,
            format_label_selector(spec.get("selector"))]


def _cronjob_cells(obj: Obj, now: datetime) -> list[Cell]:
    spec, status = _spec(obj), _status(obj)
    last = status.get("lastScheduleTime")
    job_spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    names, images = _layout_containers((job_spec.get("template") or {}).get("spec"))
    return [_name(obj), spec.get("schedule", ""), spec.get("timeZone") or "<none>",
            _print_bool_ptr(spec.get("suspend")), len(status.get("active") or []),
            since(last, now) if last else "<none>", _age(obj, now), names, images,
            format_label_selector(job_spec.get("selector"))]


def _controller_revision_cells(obj: Obj, now: datetime) -> list[Cell]:
    controller = "<none>"
    for ref in _m(obj).get("ownerReferences") or []:
        if ref.get("controller"):
            # formatResourceName(GroupKind, name, withKind=true): "statefulset.apps/web"
            group = ref.get("apiVersion", "").rpartition("/")[0]
            kind = ref.get("kind", "")
            gk = f"{kind}.{group}" if group else kind
            controller = f"{gk.lower()}/{ref.get('name', '')}" if kind else ref.get("name", "")
            break
    return [_name(obj), controller, _int(obj.get("revision")), _age(obj, now)]


def _pod_template_cells(obj: Obj, now: datetime) -> list[Cell]:
    template = obj.get("template") or {}
    names, images = _layout_containers(template.get("spec"))
    return [_name(obj), names, images,
            format_labels((template.get("metadata") or {}).get("labels"))]


def _pdb_cells(obj: Obj, now: datetime) -> list[Cell]:
    spec = _spec(obj)
    min_a = spec.get("minAvailable")
    max_u = spec.get("maxUnavailable")
    return [_name(obj), "N/A" if min_a is None else str(min_a),
            "N/A" if max_u is None else str(max_u),
            _int(_status(obj).get("disruptionsAllowed")), _age(obj, now)]


# --- services and networking ---

def _lb_ingress(status: Obj) -> str:
    # loadBalancerStatusStringer with wide=true (the server always prints wide)
    seen = set()
    for ing in ((status.get("loadBalancer") or {}).get("ingress") or []):
        if ing.get("ip"):
            seen.add(ing["ip"])
        elif ing.get("hostname"):
            seen.add(ing["hostname"])
    return ",".join(sorted(seen))


def _service_external_ip(svc: Obj) -> str:
    spec = _spec(svc)
    t = spec.get("type")
    external = spec.get("externalIPs") or []
    if t in ("ClusterIP", "NodePort"):
        return ",".join(external) if external else "<none>"
    if t == "LoadBalancer":
        lb = _lb_ingress(_status(svc))
        if external:
            return ",".join((lb.split(",") if lb else []) + list(external))
        return lb or "<pending>"
    if t == "ExternalName":
        return spec.get("externalName", "")
    return "<unknown>"


def _port_string(ports: Sequence[Obj]) -> str:
    pieces = []
    for p in ports:
        proto = p.get("protocol") or "TCP"
        node_port = _int(p.get("nodePort"))
        if node_port > 0:
            pieces.append(f"{_int(p.get('port'))}:{node_port}/{proto}")
        else:
            pieces.append(f"{_int(p.get('port'))}/{proto}")
    return ",".join(pieces)


def _service_cells(obj: Obj, now: datetime) -> list[Cell]:
    spec = _spec(obj)
    cluster_ips = spec.get("clusterIPs") or []
    internal = cluster_ips[0] if cluster_ips else (spec.get("clusterIP") or "<none>")
    return [_name(obj), spec.get("type", ""), internal, _service_external_ip(obj),
            _port_string(spec.get("ports") or []) or "<none>", _age(obj, now), format_labels(spec.get("selector"))]


def _join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _format_endpoints(obj: Obj) -> str:
    subsets = obj.get("subsets") or []
    if not subsets:
        return "<none>"
    out: list[str] = []
    limit = 3
    more = False
    count = 0
    for ss in subsets:
        addrs = ss.get("addresses") or []
        ports = ss.get("ports") or []
        if not ports:
            # headless services with no ports
            count += len(addrs)
            for a in addrs:
                if len(out) == limit:
                    more = True
                    break
                out.append(a.get("ip", ""))
            continue
        for p in ports:
            count += len(addrs)
            for a in addrs:
                if len(out) == limit:
                    more = True
                    break
                out.append(_join_host_port(a.get("ip", ""), _int(p.get("port"))))
    ret = ",".join(out)
    return f"{ret} + {count - limit} more..." if more else ret


def _list_with_more(items: list[str], more: bool, count: int, limit: int) -> str:
    ret = ",".join(items)
    if more:
        return f"{ret} + {count - limit} more..."
    return ret or "<unset>"


def _endpointslice_cells(obj: Obj, now: datetime) -> list[Cell]:
    limit = 3
    ports: list[str] = []
    more, count = False, 0
    for p in obj.get("ports") or []:
        if len(ports) < limit:
            if p.get("port") is not None:
                ports.append(str(p["port"]))
            elif p.get("name") is not None:
                ports.append(p["name"])
            else:
                ports.append("*")
        elif len(ports) == limit:
            more = True
        count += 1
    ports_s = _list_with_more(ports, more, count, limit)
    addrs: list[str] = []
    more, count = False, 0
    for ep in obj.get("endpoints") or []:
        for a in ep.get("addresses") or []:
            if len(addrs) < limit:
                addrs.append(a)
            elif len(addrs) == limit:
                more = True
            count += 1
    return [_name(obj), obj.get("addressType", ""), ports_s, _list_with_more(addrs, more, count, limit),
            _age(obj, now)]


def _ingress_hosts(rules: Sequence[Obj]) -> str:
    out: list[str] = []
    limit = 3
    more = False
    for r in rules:
        if len(out) == limit:
            more = True
        if not more and r.get("host"):
            out.append(r["host"])
    if not out:
        return "*"
    ret = ",".join(out)
    return f"{ret} + {len(rules) - limit} more..." if more else ret


def _ingress_cells(obj: Obj, now: datetime) -> list[Cell]:
    spec = _spec(obj)
    return [_name(obj), spec.get("ingressClassName") or "<none>", _ingress_hosts(spec.get("rules") or []),
            _lb_ingress(_status(obj)), "80, 443" if spec.get("tls") else "80", _age(obj, now)]


def _ingressclass_cells(obj: Obj, now: datetime) -> list[Cell]:
    spec = _spec(obj)
    params = spec.get("parameters")
    p = "<none>"
    if params is not None:
        p = params.get("kind", "")
        if params.get("apiGroup") is not None:
            p += "." + params["apiGroup"]
        p += "/" + params.get("name", "")
    return [_name(obj), spec.get("controller", ""), p, _age(obj, now)]


def _networkpolicy_cells(obj: Obj, now: datetime) -> list[Cell]:
    # podSelector is a struct, never nil: an absent one is the empty (match-all) selector
    return [_name(obj), format_label_selector(_spec(obj).get("podSelector") or {}), _age(obj, now)]


# --- core config, identity, cluster ---

def _configmap_cells(obj: Obj, now: datetime) -> list[Cell]:
    return [_name(obj), len(obj.get("data") or {}) + len(obj.get("binaryData") or {}), _age(obj, now)]


def _secret_cells(obj: Obj, now: datetime) -> list[Cell]:
    return [_name(obj), obj.get("type", ""), len(obj.get("data") or {}), _age(obj, now)]


def _name_age_cells(obj: Obj, now: datetime) -> list[Cell]:
    return [_name(obj), _age(obj, now)]


def _namespace_cells(obj: Obj, now: datetime) -> list[Cell]:
    return [_name(obj), _status(obj).get("phase", ""), _age(obj, now)]


_NODE_ROLE_PREFIX: Final = "node-role.kubernetes.io/"


def _node_cells(obj: Obj, now: datetime) -> list[Cell]:
    spec, status = _spec(obj), _status(obj)
    states: list[str] = []
    for c in status.get("conditions") or []:
        if c.get("type") == "Ready":
            states = ["Ready" if c.get("status") == "True" else "NotReady"]
    if not states:
        states = ["Unknown"]
    if spec.get("unschedulable"):
        states.append("SchedulingDisabled")
    roles = set()
    for k, v in (_m(obj).get("labels") or {}).items():
        if k.startswith(_NODE_ROLE_PREFIX):
            if role := k[len(_NODE_ROLE_PREFIX):]:
                roles.add(role)
        elif k == "kubernetes.io/role" and v:
            roles.add(v)
    info = status.get("nodeInfo") or {}

    def address(type_: str) -> str:
        for a in status.get("addresses") or []:
            if a.get("type") == type_:
                return a.get("address", "")
        return "<none>"

    return [_name(obj), ",".join(states), ",".join(sorted(roles)) or "<none>", _age(obj, now),
            info.get("kubeletVersion", ""), address("InternalIP"), address("ExternalIP"),
            info.get("osImage") or "<unknown>", info.get("kernelVersion") or "<unknown>",
            info.get("containerRuntimeVersion") or "<unknown>"]


def _event_cells(obj: Obj, now: datetime) -> list[Cell]:
    first = obj.get("firstTimestamp")
    first_s = since(first, now) if first else since(obj.get("eventTime"), now)
    last = obj.get("lastTimestamp")
    last_s = since(last, now) if last else first_s
    count = _int(obj.get("count"))
    series = obj.get("series")
    if series is not None:
        last_s = since(series.get("lastObservedTime"), now)
        count = _int(series.get("count"))
    elif count == 0:
        # singleton events have no count in the new API
        count = 1
    io = obj.get("involvedObject") or {}
    kind = (io.get("kind") or "").lower()
    target = f"{kind}/{io['name']}" if io.get("name") else kind
    source = obj.get("source") or {}
    component = source.get("component") or obj.get("reportingComponent") or ""
    instance = source.get("host") or obj.get("reportingInstance") or ""
    src = f"{component}, {instance}" if instance else component
    return [last_s, obj.get("type", ""), obj.get("reason", ""), target, io.get("fieldPath", ""), src,
            (obj.get("message") or "").strip(), first_s, count, _name(obj)]


def _event_view(obj: Obj) -> Obj:
    if obj.get("apiVersion") == conversion.EVENTS_V1:
        return conversion.convert(obj, conversion.CORE_EVENT)
    return obj


_ACCESS_MODES: Final = (("ReadWriteOnce", "RWO"), ("ReadOnlyMany", "ROX"), ("ReadWriteMany", "RWX"),
                        ("ReadWriteOncePod", "RWOP"))


def _access_modes(modes: Sequence[str] | None) -> str:
    present = set(modes or ())
    return ",".join(short for mode, short in _ACCESS_MODES if mode in present)


_BETA_STORAGE_CLASS: Final = "volume.beta.kubernetes.io/storage-class"


def _storage_class(obj: Obj) -> str:
    ann = _m(obj).get("annotations") or {}
    if _BETA_STORAGE_CLASS in ann:
        return ann[_BETA_STORAGE_CLASS]
    return _spec(obj).get("storageClassName") or ""


def _pv_cells(obj: Obj, now: datetime) -> list[Cell]:
    spec, status = _spec(obj), _status(obj)
    claim = ""
    ref = spec.get("claimRef")
    if ref is not None:
        claim = f"{ref.get('namespace', '')}/{ref.get('name', '')}"
    phase = "Terminating" if _m(obj).get("deletionTimestamp") else status.get("phase", "")
    return [_name(obj), _qty((spec.get("capacity") or {}).get("storage")), _access_modes(spec.get("accessModes")),
            spec.get("persistentVolumeReclaimPolicy", ""), phase, claim, _storage_class(obj),
            spec.get("volumeAttributesClassName") or "<unset>", status.get("reason", ""), _age(obj, now),
            spec.get("volumeMode") or "<unset>"]


def _pvc_cells(obj: Obj, now: datetime) -> list[Cell]:
    spec, status = _spec(obj), _status(obj)
    phase = "Terminating" if _m(obj).get("deletionTimestamp") else status.get("phase", "")
    capacity = access = ""
    if spec.get("volumeName"):
        access = _access_modes(status.get("accessModes"))
        capacity = _qty((status.get("capacity") or {}).get("storage"))
    return [_name(obj), phase, spec.get("volumeName", ""), capacity, access, _storage_class(obj),
            spec.get("volumeAttributesClassName") or "<unset>", _age(obj, now), spec.get("volumeMode") or "<unset>"]


def _resourcequota_cells(obj: Obj, now: datetime) -> list[Cell]:
    status = _status(obj)
    hard = status.get("hard") or {}
    used = status.get("used") or {}
    requests: list[str] = []
    limits: list[str] = []
    for r in sorted(hard):
        pieces = r.split(".")
        target = limits if len(pieces) > 1 and pieces[0] == "limits" else requests
        target.append(f"{r}: {_qty(used.get(r))}/{_qty(hard[r])}")
    return [_name(obj), ", ".join(requests), ", ".join(limits), _age(obj, now)]


def _component_status_cells(obj: Obj, now: datetime) -> list[Cell]:
    status, message, error = "Unknown", "", ""
    for c in obj.get("conditions") or []:
        if c.get("type") == "Healthy":
            status = "Healthy" if c.get("status") == "True" else "Unhealthy"
            message = c.get("message", "")
            error = c.get("error", "")
            break
    return [_name(obj), status, message, error]


# --- autoscaling, scheduling, storage, rbac, coordination ---

def _hpa_metrics(specs: Sequence[Obj], statuses: Sequence[Obj]) -> str:
    if not specs:
        return "<none>"
    out: list[str] = []
    limit = 2
    for i, spec in enumerate(specs):
        st = statuses[i] if len(statuses) > i else {}
        t = spec.get("type")
        if t == "External":
            target = (spec.get("external") or {}).get("target") or {}
            cur = (st.get("external") or {}).get("current") if st.get("external") else None
            if target.get("averageValue") is not None:
                current = cur.get("averageValue") if cur and cur.get("averageValue") is not None else "<unknown>"
                out.append(f"{current}/{target['averageValue']} (avg)")
            else:
                current = _qty(cur.get("value")) if cur is not None else "<unknown>"
                out.append(f"{current}/{_qty(target.get('value'))}")
        elif t == "Pods":
            target = (spec.get("pods") or {}).get("target") or {}
            cur = (st.get("pods") or {}).get("current") if st.get("pods") else None
            current = _qty(cur.get("averageValue")) if cur is not None else "<unknown>"
            out.append(f"{current}/{_qty(target.get('averageValue'))}")
        elif t == "Object":
            target = (spec.get("object") or {}).get("target") or {}
            cur = (st.get("object") or {}).get("current") if st.get("object") else None
            if target.get("averageValue") is not None:
                current = cur.get("averageValue") if cur and cur.get("averageValue") is not None else "<unknown>"
                out.append(f"{current}/{target['averageValue']} (avg)")
            else:
                current = _qty(cur.get("value")) if cur is not None else "<unknown>"
                out.append(f"{current}/{_qty(target.get('value'))}")
        elif t in ("Resource", "ContainerResource"):
            key = "resource" if t == "Resource" else "containerResource"
            src = spec.get(key) or {}
            target = src.get("target") or {}
            cur = (st.get(key) or {}).get("current") if st.get(key) else None
            if target.get("averageValue") is not None:
                current = _qty(cur.get("averageValue")) if cur is not None else "<unknown>"
                out.append(f"{src.get('name', '')}: {current}/{target['averageValue']}")
            else:
                current = "<unknown>"
                if cur is not None and cur.get("averageUtilization") is not None:
                    current = f"{cur['averageUtilization']}%"
                tgt = "<auto>"
                if target.get("averageUtilization") is not None:
                    tgt = f"{target['averageUtilization']}%"
                out.append(f"{src.get('name', '')}: {current}/{tgt}")
        else:
            out.append("<unknown type>")
    count = len(out)
    if count > limit:
        return ", ".join(out[:limit]) + f" + {count - limit} more..."
    return ", ".join(out)


def _hpa_view(obj: Obj) -> Obj:
    if obj.get("apiVersion") == conversion.HPA_V1:
        return conversion.convert(obj, conversion.HPA_V2)
    return obj


def _hpa_cells(obj: Obj, now: datetime) -> list[Cell]:
    spec, status = _spec(obj), _status(obj)
    ref = spec.get("scaleTargetRef") or {}
    min_pods = "<unset>" if spec.get("minReplicas") is None else str(spec["minReplicas"])
    return [_name(obj), f"{ref.get('kind', '')}/{ref.get('name', '')}",
            _hpa_metrics(spec.get("metrics") or [], status.get("currentMetrics") or []), min_pods,
            _int(spec.get("maxReplicas")), _int(status.get("currentReplicas")), _age(obj, now)]


def _apiservice_cells(obj: Obj, now: datetime) -> list[Cell]:
    """kube-aggregator's printer: the backing Service (``Local`` for none) and the Available
    condition, with its reason when not True."""
    svc = _spec(obj).get("service")
    service = f"{svc.get('namespace', '')}/{svc.get('name', '')}" if isinstance(svc, dict) else "Local"
    available = "Unknown"
    for c in _status(obj).get("conditions") or ():
        if c.get("type") == "Available":
            available = str(c.get("status") or "Unknown")
            if available != "True":
                available += f" ({c.get('reason', '')})"
    return [_name(obj), service, available, _age(obj, now)]


def _priorityclass_cells(obj: Obj, now: datetime) -> list[Cell]:
    return [_name(obj), _int(obj.get("value")), bool(obj.get("globalDefault")), _age(obj, now),
            obj.get("preemptionPolicy") or ""]


def _storageclass_cells(obj: Obj, now: datetime) -> list[Cell]:
    ann = _m(obj).get("annotations") or {}
    name = _name(obj)
    if (ann.get("storageclass.kubernetes.io/is-default-class") == "true"
            or ann.get("storageclass.beta.kubernetes.io/is-default-class") == "true"):
        name += " (default)"
    return [name, obj.get("provisioner", ""), obj.get("reclaimPolicy") or "Delete",
            obj.get("volumeBindingMode") or "Immediate", bool(obj.get("allowVolumeExpansion")), _age(obj, now)]


def _subjects(subjects: Sequence[Obj]) -> tuple[str, str, str]:
    users, groups, sas = [], [], []
    for s in subjects:
        kind = s.get("kind")
        if kind == "ServiceAccount":
            sas.append(f"{s.get('namespace', '')}/{s.get('name', '')}")
        elif kind == "User":
            users.append(s.get("name", ""))
        elif kind == "Group":
            groups.append(s.get("name", ""))
    return ", ".join(users), ", ".join(groups), ", ".join(sas)


def _rolebinding_cells(obj: Obj, now: datetime) -> list[Cell]:
    ref = obj.get("roleRef") or {}
    users, groups, sas = _subjects(obj.get("subjects") or [])
    return [_name(obj), f"{ref.get('kind', '')}/{ref.get('name', '')}", _age(obj, now), users, groups, sas]


def _lease_cells(obj: Obj, now: datetime) -> list[Cell]:
    return [_name(obj), _spec(obj).get("holderIdentity") or "", _age(obj, now)]


def _webhook_cells(obj: Obj, now: datetime) -> list[Cell]:
    return [_name(obj), len(obj.get("webhooks") or []), _age(obj, now)]


def _runtimeclass_cells(obj: Obj, now: datetime) -> list[Cell]:
    return [_name(obj), obj.get("handler", ""), _age(obj, now)]


def _csr_cells(obj: Obj, now: datetime) -> list[Cell]:
    spec, status = _spec(obj), _status(obj)
    types = {c.get("type") for c in status.get("conditions") or []}
    state = "Denied" if "Denied" in types else "Approved" if "Approved" in types else "Pending"
    if "Failed" in types:
        state += ",Failed"
    if status.get("certificate"):
        state += ",Issued"
    requested = "<none>"
    if spec.get("expirationSeconds") is not None:
        requested = human_duration(timedelta(seconds=_int(spec["expirationSeconds"])))
    return [_name(obj), _age(obj, now), spec.get("signerName") or "<none>", spec.get("username", ""), requested,
            state]


def _volumeattachment_cells(obj: Obj, now: datetime) -> list[Cell]:
    spec = _spec(obj)
    return [_name(obj), spec.get("attacher", ""), (spec.get("source") or {}).get("persistentVolumeName") or "",
            spec.get("nodeName", ""), bool(_status(obj).get("attached")), _age(obj, now)]


def _csinode_cells(obj: Obj, now: datetime) -> list[Cell]:
    return [_name(obj), len(_spec(obj).get("drivers") or []), _age(obj, now)]


def _csidriver_cells(obj: Obj, now: datetime) -> list[Cell]:
    spec = _spec(obj)
    attach = spec.get("attachRequired")
    token_requests = "<unset>"
    if spec.get("tokenRequests") is not None:
        token_requests = ",".join(t.get("audience", "") for t in spec["tokenRequests"])
    return [_name(obj), True if attach is None else bool(attach), bool(spec.get("podInfoOnMount")),
            bool(spec.get("storageCapacity")), token_requests, bool(spec.get("requiresRepublish")),
            ",".join(spec.get("volumeLifecycleModes") or []) or "<none>", _age(obj, now)]


def _vac_cells(obj: Obj, now: datetime) -> list[Cell]:
    return [_name(obj), obj.get("driverName", ""), _age(obj, now)]


_STD_NAME_AGE: Final = (NAME, AGE)

PRINTERS: Final[dict[tuple[str, str], Printer]] = {
    ("", "Pod"): Printer((
        NAME,
        Column("Ready", doc="The aggregate readiness state of this pod for accepting traffic."),
        Column("Status", doc="The aggregate status of the containers in this pod."),
        Column("Restarts", doc="The number of times the containers in this pod have been restarted and when the "
                               "last container in this pod has restarted."),
        AGE,
        Column("IP", priority=1, doc=(_CORE + "PodStatus", "podIP")),
        Column("Node", priority=1, doc=(_CORE + "PodSpec", "nodeName")),
        Column("Nominated Node", priority=1, doc=(_CORE + "PodStatus", "nominatedNodeName")),
        Column("Readiness Gates", priority=1, doc=(_CORE + "PodSpec", "readinessGates")),
    ), _pod_cells, conditions=_pod_conditions),
    ("", "PodTemplate"): Printer((
        NAME,
        Column("Containers", doc="Names of each container in the template."),
        Column("Images", doc="Images referenced by each container in the template."),
        Column("Pod Labels", doc="The labels for the pod template."),
    ), _pod_template_cells),
    ("policy", "PodDisruptionBudget"): Printer((
        NAME,
        Column("Min Available", doc="The minimum number of pods that must be available."),
        Column("Max Unavailable", doc="The maximum number of pods that may be unavailable."),
        Column("Allowed Disruptions", "integer", doc="Calculated number of pods that may be disrupted at this time."),
        AGE,
    ), _pdb_cells),
    ("", "ReplicationController"): Printer((
        NAME,
        Column("Desired", "integer", doc=(_CORE + "ReplicationControllerSpec", "replicas")),
        Column("Current", "integer", doc=(_CORE + "ReplicationControllerStatus", "replicas")),
        Column("Ready", "integer", doc=(_CORE + "ReplicationControllerStatus", "readyReplicas")),
        AGE, CONTAINERS, IMAGES, _sel(_CORE + "ReplicationControllerSpec"),
    ), _rc_cells),
    ("apps", "ReplicaSet"): Printer((
        NAME,
        Column("Desired", "integer", doc=(_APPS + "ReplicaSetSpec", "replicas")),
        Column("Current", "integer", doc=(_APPS + "ReplicaSetStatus", "replicas")),
        Column("Ready", "integer", doc=(_APPS + "ReplicaSetStatus", "readyReplicas")),
        AGE, CONTAINERS, IMAGES, _sel(_APPS + "ReplicaSetSpec"),
    ), _replicaset_cells),
    ("apps", "DaemonSet"): Printer((
        NAME,
        Column("Desired", "integer", doc=(_APPS + "DaemonSetStatus", "desiredNumberScheduled")),
        Column("Current", "integer", doc=(_APPS + "DaemonSetStatus", "currentNumberScheduled")),
        Column("Ready", "integer", doc=(_APPS + "DaemonSetStatus", "numberReady")),
        Column("Up-to-date", "integer", doc=(_APPS + "DaemonSetStatus", "updatedNumberScheduled")),
        Column("Available", "integer", doc=(_APPS + "DaemonSetStatus", "numberAvailable")),
        Column("Node Selector", doc=(_CORE + "PodSpec", "nodeSelector")),
        AGE, CONTAINERS, IMAGES, _sel(_APPS + "DaemonSetSpec"),
    ), _daemonset_cells),
    ("batch", "Job"): Printer((
        NAME,
        Column("Status", doc="Status of the job."),
        Column("Completions", doc=(_BATCH + "JobStatus", "succeeded")),
        Column("Duration", doc="Time required to complete the job."),
        AGE, CONTAINERS, IMAGES, _sel(_BATCH + "JobSpec"),
    ), _job_cells),
    ("batch", "CronJob"): Printer((
        NAME,
        Column("Schedule", doc=(_BATCH + "CronJobSpec", "schedule")),
        Column("Timezone", doc=(_BATCH + "CronJobSpec", "timeZone")),
        Column("Suspend", "boolean", doc=(_BATCH + "CronJobSpec", "suspend")),
        Column("Active", "integer", doc=(_BATCH + "CronJobStatus", "active")),
        Column("Last Schedule", doc=(_BATCH + "CronJobStatus", "lastScheduleTime")),
        AGE, CONTAINERS, IMAGES, _sel(_BATCH + "JobSpec"),
    ), _cronjob_cells),
    ("", "Service"): Printer((
        NAME,
        Column("Type", doc=(_CORE + "ServiceSpec", "type")),
        Column("Cluster-IP", doc=(_CORE + "ServiceSpec", "clusterIP")),
        Column("External-IP", doc=(_CORE + "ServiceSpec", "externalIPs")),
        Column("Port(s)", doc=(_CORE + "ServiceSpec", "ports")),
        AGE,
        _sel(_CORE + "ServiceSpec"),
    ), _service_cells),
    ("networking.k8s.io", "Ingress"): Printer((
        NAME,
        Column("Class", doc="The name of the IngressClass resource that should be used for additional configuration"),
        Column("Hosts", doc="Hosts that incoming requests are matched against before the ingress rule"),
        Column("Address", doc="Address is a list containing ingress points for the load-balancer"),
        Column("Ports", doc="Ports of TLS configurations that open"),
        AGE,
    ), _ingress_cells),
    ("networking.k8s.io", "IngressClass"): Printer((
        NAME,
        Column("Controller", doc="Controller that is responsible for handling this class"),
        Column("Parameters", doc="A reference to a resource with additional parameters"),
        AGE,
    ), _ingressclass_cells),
    ("apps", "StatefulSet"): Printer((
        NAME, Column("Ready", doc="Number of the pod with ready state"), AGE, CONTAINERS, IMAGES,
    ), _statefulset_cells),
    ("", "Endpoints"): Printer((
        NAME, Column("Endpoints", doc=(_CORE + "Endpoints", "subsets")), AGE,
    ), lambda o, now: [_name(o), _format_endpoints(o), _age(o, now)]),
    ("", "Node"): Printer((
        NAME,
        Column("Status", doc="The status of the node"),
        Column("Roles", doc="The roles of the node"),
        AGE,
        Column("Version", doc=(_CORE + "NodeSystemInfo", "kubeletVersion")),
        Column("Internal-IP", priority=1, doc=(_CORE + "NodeStatus", "addresses")),
        Column("External-IP", priority=1, doc=(_CORE + "NodeStatus", "addresses")),
        Column("OS-Image", priority=1, doc=(_CORE + "NodeSystemInfo", "osImage")),
        Column("Kernel-Version", priority=1, doc=(_CORE + "NodeSystemInfo", "kernelVersion")),
        Column("Container-Runtime", priority=1, doc=(_CORE + "NodeSystemInfo", "containerRuntimeVersion")),
    ), _node_cells),
    ("", "Namespace"): Printer((
        NAME, Column("Status", doc="The status of the namespace"), AGE,
    ), _namespace_cells),
    ("", "Secret"): Printer((
        NAME, Column("Type", doc=(_CORE + "Secret", "type")), Column("Data", doc=(_CORE + "Secret", "data")), AGE,
    ), _secret_cells),
    ("", "ServiceAccount"): Printer(_STD_NAME_AGE, _name_age_cells),
    ("", "PersistentVolume"): Printer((
        NAME,
        Column("Capacity", doc=(_CORE + "PersistentVolumeSpec", "capacity")),
        Column("Access Modes", doc=(_CORE + "PersistentVolumeSpec", "accessModes")),
        Column("Reclaim Policy", doc=(_CORE + "PersistentVolumeSpec", "persistentVolumeReclaimPolicy")),
        Column("Status", doc=(_CORE + "PersistentVolumeStatus", "phase")),
        Column("Claim", doc=(_CORE + "PersistentVolumeSpec", "claimRef")),
        Column("StorageClass", doc="StorageClass of the pv"),
        Column("VolumeAttributesClass", doc="VolumeAttributesClass of the pv"),
        Column("Reason", doc=(_CORE + "PersistentVolumeStatus", "reason")),
        AGE,
        Column("VolumeMode", priority=1, doc=(_CORE + "PersistentVolumeSpec", "volumeMode")),
    ), _pv_cells),
    ("", "PersistentVolumeClaim"): Printer((
        NAME,
        Column("Status", doc=(_CORE + "PersistentVolumeClaimStatus", "phase")),
        Column("Volume", doc=(_CORE + "PersistentVolumeClaimSpec", "volumeName")),
        Column("Capacity", doc=(_CORE + "PersistentVolumeClaimStatus", "capacity")),
        Column("Access Modes", doc=(_CORE + "PersistentVolumeClaimStatus", "accessModes")),
        Column("StorageClass", doc="StorageClass of the pvc"),
        Column("VolumeAttributesClass", doc="VolumeAttributesClass of the pvc"),
        AGE,
        Column("VolumeMode", priority=1, doc=(_CORE + "PersistentVolumeClaimSpec", "volumeMode")),
    ), _pvc_cells),
    ("", "ComponentStatus"): Printer((
        NAME,
        Column("Status", doc="Status of the component conditions"),
        Column("Message", doc="Message of the component conditions"),
        Column("Error", doc="Error of the component conditions"),
    ), _component_status_cells),
    ("apps", "Deployment"): Printer((
        NAME,
        Column("Ready", doc="Number of the pod with ready state"),
        Column("Up-to-date", doc=(_APPS + "DeploymentStatus", "updatedReplicas")),
        Column("Available", doc=(_APPS + "DeploymentStatus", "availableReplicas")),
        AGE, CONTAINERS, IMAGES, _sel(_APPS + "DeploymentSpec"),
    ), _deployment_cells),
    ("autoscaling", "HorizontalPodAutoscaler"): Printer((
        NAME,
        Column("Reference", doc=("io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerSpec", "scaleTargetRef")),
        Column("Targets", doc=("io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerSpec", "metrics")),
        Column("MinPods", doc=("io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerSpec", "minReplicas")),
        Column("MaxPods", doc=("io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerSpec", "maxReplicas")),
        Column("Replicas", doc=("io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerStatus", "currentReplicas")),
        AGE,
    ), _hpa_cells, view=_hpa_view),
    ("", "ConfigMap"): Printer((
        NAME, Column("Data", doc=(_CORE + "ConfigMap", "data")), AGE,
    ), _configmap_cells),
    ("networking.k8s.io", "NetworkPolicy"): Printer((
        NAME, Column("Pod-Selector", doc=("io.k8s.api.networking.v1.NetworkPolicySpec", "podSelector")), AGE,
    ), _networkpolicy_cells),
    ("rbac.authorization.k8s.io", "RoleBinding"): Printer((
        NAME,
        Column("Role", doc=("io.k8s.api.rbac.v1.RoleBinding", "roleRef")),
        AGE,
        Column("Users", priority=1, doc="Users in the roleBinding"),
        Column("Groups", priority=1, doc="Groups in the roleBinding"),
        Column("ServiceAccounts", priority=1, doc="ServiceAccounts in the roleBinding"),
    ), _rolebinding_cells),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): Printer((
        NAME,
        Column("Role", doc=("io.k8s.api.rbac.v1.ClusterRoleBinding", "roleRef")),
        AGE,
        Column("Users", priority=1, doc="Users in the clusterRoleBinding"),
        Column("Groups", priority=1, doc="Groups in the clusterRoleBinding"),
        Column("ServiceAccounts", priority=1, doc="ServiceAccounts in the clusterRoleBinding"),
    ), _rolebinding_cells),
    ("certificates.k8s.io", "CertificateSigningRequest"): Printer((
        NAME, AGE,
        Column("SignerName", doc=("io.k8s.api.certificates.v1.CertificateSigningRequestSpec", "signerName")),
        Column("Requestor", doc=("io.k8s.api.certificates.v1.CertificateSigningRequestSpec", "request")),
        Column("RequestedDuration",
               doc=("io.k8s.api.certificates.v1.CertificateSigningRequestSpec", "expirationSeconds")),
        Column("Condition", doc=("io.k8s.api.certificates.v1.CertificateSigningRequestStatus", "conditions")),
    ), _csr_cells),
    ("coordination.k8s.io", "Lease"): Printer((
        NAME, Column("Holder", doc=("io.k8s.api.coordination.v1.LeaseSpec", "holderIdentity")), AGE,
    ), _lease_cells),
    ("storage.k8s.io", "StorageClass"): Printer((
        NAME,
        Column("Provisioner", doc=("io.k8s.api.storage.v1.StorageClass", "provisioner")),
        Column("ReclaimPolicy", doc=("io.k8s.api.storage.v1.StorageClass", "reclaimPolicy")),
        Column("VolumeBindingMode", doc=("io.k8s.api.storage.v1.StorageClass", "volumeBindingMode")),
        Column("AllowVolumeExpansion", doc=("io.k8s.api.storage.v1.StorageClass", "allowVolumeExpansion")),
        AGE,
    ), _storageclass_cells),
    ("storage.k8s.io", "VolumeAttributesClass"): Printer((
        NAME, Column("DriverName", doc=("io.k8s.api.storage.v1.VolumeAttributesClass", "driverName")), AGE,
    ), _vac_cells),
    ("apps", "ControllerRevision"): Printer((
        NAME,
        Column("Controller", doc="Controller of the object"),
        Column("Revision", doc=(_APPS + "ControllerRevision", "revision")),
        AGE,
    ), _controller_revision_cells),
    ("", "ResourceQuota"): Printer((
        NAME,
        Column("Request", doc="Request represents a minimum amount of cpu/memory that a container may consume."),
        Column("Limit", doc="Limits control the maximum amount of cpu/memory that a container may use independent "
                            "of contention on the node."),
        AGE,
    ), _resourcequota_cells),
    ("apiregistration.k8s.io", "APIService"): Printer((
        NAME,
        Column("Service", doc="The reference to the service that hosts this API endpoint."),
        Column("Available", doc="Whether this service is available."),
        AGE,
    ), _apiservice_cells),
    ("scheduling.k8s.io", "PriorityClass"): Printer((
        NAME,
        Column("Value", "integer", doc=("io.k8s.api.scheduling.v1.PriorityClass", "value")),
        Column("Global-Default", "boolean", doc=("io.k8s.api.scheduling.v1.PriorityClass", "globalDefault")),
        AGE,
        Column("PreemptionPolicy", priority=1, doc=("io.k8s.api.scheduling.v1.PriorityClass", "preemptionPolicy")),
    ), _priorityclass_cells),
    ("node.k8s.io", "RuntimeClass"): Printer((
        NAME, Column("Handler", doc=("io.k8s.api.node.v1.RuntimeClass", "handler")), AGE,
    ), _runtimeclass_cells),
    ("storage.k8s.io", "VolumeAttachment"): Printer((
        NAME,
        Column("Attacher", format="name", doc=("io.k8s.api.storage.v1.VolumeAttachmentSpec", "attacher")),
        Column("PV", doc=("io.k8s.api.storage.v1.VolumeAttachmentSource", "persistentVolumeName")),
        Column("Node", doc=("io.k8s.api.storage.v1.VolumeAttachmentSpec", "nodeName")),
        Column("Attached", "boolean", doc=("io.k8s.api.storage.v1.VolumeAttachmentStatus", "attached")),
        AGE,
    ), _volumeattachment_cells),
    ("discovery.k8s.io", "EndpointSlice"): Printer((
        NAME,
        Column("AddressType", doc=("io.k8s.api.discovery.v1.EndpointSlice", "addressType")),
        Column("Ports", doc=("io.k8s.api.discovery.v1.EndpointSlice", "ports")),
        Column("Endpoints", doc=("io.k8s.api.discovery.v1.EndpointSlice", "endpoints")),
        AGE,
    ), _endpointslice_cells),
    ("storage.k8s.io", "CSINode"): Printer((
        NAME, Column("Drivers", "integer", doc="Drivers indicates the number of CSI drivers registered on the node"),
        AGE,
    ), _csinode_cells),
    ("storage.k8s.io", "CSIDriver"): Printer((
        NAME,
        Column("AttachRequired", "boolean", doc=("io.k8s.api.storage.v1.CSIDriverSpec", "attachRequired")),
        Column("PodInfoOnMount", "boolean", doc=("io.k8s.api.storage.v1.CSIDriverSpec", "podInfoOnMount")),
        Column("StorageCapacity", "boolean", doc=("io.k8s.api.storage.v1.CSIDriverSpec", "storageCapacity")),
        Column("TokenRequests", doc=("io.k8s.api.storage.v1.CSIDriverSpec", "tokenRequests")),
        Column("RequiresRepublish", "boolean", doc=("io.k8s.api.storage.v1.CSIDriverSpec", "requiresRepublish")),
        Column("Modes", doc=("io.k8s.api.storage.v1.CSIDriverSpec", "volumeLifecycleModes")),
        AGE,
    ), _csidriver_cells),
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"): Printer((
        NAME,
        Column("Webhooks", "integer", doc="Webhooks indicates the number of webhooks registered in this configuration"),
        AGE,
    ), _webhook_cells),
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"): Printer((
        NAME,
        Column("Webhooks", "integer", doc="Webhooks indicates the number of webhooks registered in this configuration"),
        AGE,
    ), _webhook_cells),
}

_EVENT_PRINTER: Final = Printer((
    Column("Last Seen", doc=(_CORE + "Event", "lastTimestamp")),
    Column("Type", doc=(_CORE + "Event", "type")),
    Column("Reason", doc=(_CORE + "Event", "reason")),
    Column("Object", doc=(_CORE + "Event", "involvedObject")),
    Column("Subobject", priority=1, doc=(_CORE + "ObjectReference", "fieldPath")),
    Column("Source", priority=1, doc=(_CORE + "Event", "source")),
    Column("Message", doc=(_CORE + "Event", "message")),
    Column("First Seen", priority=1, doc=(_CORE + "Event", "firstTimestamp")),
    Column("Count", priority=1, doc=(_CORE + "Event", "count")),
    Column("Name", priority=1, format="name", doc=(_META, "name")),
), _event_cells, view=_event_view)
PRINTERS[("", "Event")] = _EVENT_PRINTER
# events.k8s.io objects print through the same (internal, core-shaped) printer, as in kube
PRINTERS[("events.k8s.io", "Event")] = _EVENT_PRINTER


def _default_cells(obj: Obj, now: datetime) -> list[Cell]:
    # kube's default TableConvertor: the creation time as RFC 3339 UTC, not an age
    t = _time(_m(obj).get("creationTimestamp"))
    created = (t or datetime(1, 1, 1, tzinfo=UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [_name(obj), created]


DEFAULT_PRINTER: Final = Printer((
    Column("Name", format="name", doc=(_META, "name")),
    Column("Created At", "date", doc=(_META, "creationTimestamp")),
), _default_cells)


def printer_for(kind: Any) -> Printer:
    """The printer for a :class:`~k8py.api.registry.KindInfo` (kube's default table if none)."""
    return PRINTERS.get((kind.group, kind.kind), DEFAULT_PRINTER)


def column_definitions(kind: Any) -> list[Obj]:
    p = printer_for(kind)
    return [dict(d) for d in _column_definitions(p.columns)]


# ---------------------------------------------------------------------------
# Table and PartialObjectMetadata


def partial_object_metadata(kind: Any, obj: Obj, *, group_version: str = TABLE_GROUP_VERSION) -> Obj:
    """The ``as=PartialObjectMetadata`` form of ``obj``: its whole ``metadata``, nothing else."""
    return {"kind": "PartialObjectMetadata", "apiVersion": group_version, "metadata": obj.get("metadata") or {}}


def _list_metadata(list_meta: Obj | None) -> Obj:
    out: Obj = {}
    if not list_meta:
        return out
    for key in ("resourceVersion", "continue"):
        if list_meta.get(key):
            out[key] = list_meta[key]
    if list_meta.get("remainingItemCount") is not None:
        out["remainingItemCount"] = list_meta["remainingItemCount"]
    return out


def partial_object_metadata_list(kind: Any, objs: Iterable[Obj], list_meta: Obj | None = None, *,
                                 group_version: str = TABLE_GROUP_VERSION) -> Obj:
    """The ``as=PartialObjectMetadataList`` form of a list (``list_meta``: the list's ``metadata``)."""
    return {
        "kind": "PartialObjectMetadataList",
        "apiVersion": group_version,
        "metadata": _list_metadata(list_meta),
        "items": [partial_object_metadata(kind, o, group_version=group_version) for o in objs],
    }


def check_include_object(value: str | None) -> str:
    """Validate ``?includeObject=``; ``""``/``None`` mean ``Metadata``. Raises a 400 like kube."""
    if not value:
        return "Metadata"
    if value not in INCLUDE_OBJECT_VALUES:
        raise bad_request(f'unrecognized includeObject value: "{value}"')
    return value


def table(
    kind: Any,
    objs: Sequence[Obj],
    *,
    include_object: str | None = "Metadata",
    now: datetime | None = None,
    list_meta: Obj | None = None,
    no_headers: bool = False,
    group_version: str = TABLE_GROUP_VERSION,
) -> Obj:
    """Render ``objs`` (all of ``kind``, in the version being served) as a ``Table``.

    ``list_meta`` is the list's ``metadata`` (``resourceVersion``, ``continue``,
    ``remainingItemCount``) for a list request; leave it ``None`` for a single
    object, whose own ``resourceVersion`` the table then carries.
    ``include_object``: ``None`` (no object), ``Metadata`` (``PartialObjectMetadata``;
    the default), ``Object`` (the object itself). ``no_headers`` drops the column
    definitions (``?noHeaders=true``, later events of a table watch).
    """
    mode = check_include_object(include_object)
    when = now or datetime.now(UTC)
    printer = printer_for(kind)
    rows: list[Obj] = []
    for obj in objs:
        view = printer.view(obj) if printer.view is not None else obj
        row: Obj = {"cells": printer.cells(view, when)}
        if printer.conditions is not None:
            conds = printer.conditions(view)
            if conds:
                row["conditions"] = [dict(c) for c in conds]
        if mode == "Metadata":
            row["object"] = partial_object_metadata(kind, obj, group_version=group_version)
        elif mode == "Object":
            row["object"] = obj
        else:
            row["object"] = None
        rows.append(row)
    if list_meta is not None:
        meta = _list_metadata(list_meta)
    elif len(objs) == 1 and _m(objs[0]).get("resourceVersion"):
        meta = {"resourceVersion": _m(objs[0])["resourceVersion"]}
    else:
        meta = {}
    return {
        "kind": "Table",
        "apiVersion": group_version,
        "metadata": meta,
        "columnDefinitions": [] if no_headers else column_definitions(kind),
        "rows": rows,
    }


__all__ = [
    "DEFAULT_PRINTER",
    "PRINTERS",
    "Column",
    "Printer",
    "check_include_object",
    "column_definitions",
    "human_duration",
    "parse_time",
    "partial_object_metadata",
    "partial_object_metadata_list",
    "printer_for",
    "since",
    "table",
]
