"""Service ClusterIP and NodePort allocation, as kube's Service REST storage does it before a
Service is validated and stored, and releases after it is deleted (the Service strategy's hooks).
The allocation is safe with several API servers on one store: see :class:`ServiceAllocator`.
Reservations are raw keys, read and written through :class:`Objects` like everything else."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from k8py.api import errors
from k8py.api.registry import KindInfo
from k8py.api.validation.core import validate_cluster_ips
from k8py.storage.interface import ConflictError, KeyExistsError, KeyNotFoundError, KeyValue, StoreError

if TYPE_CHECKING:
    from k8py.apiserver.objects import Objects

Obj = dict[str, Any]

log = logging.getLogger(__name__)

NODE_PORT_RANGE = (30000, 32767)


# -- Service ClusterIP / NodePort allocation ------------------------------------------------------
#
# Several API servers may share one store, so an address or port is handed out by the store, not
# by a lock in one process: every allocated ClusterIP and NodePort has a reservation key, written
# create-if-absent (the store's compare-and-swap), as kube-apiserver writes one IPAddress object
# per ClusterIP. Two servers picking the same address race on one key and exactly one wins.
#
# The reservation is written before the Service itself (the Service strategy's begin_write), and
# a crash can come between the two; so a reservation can outlive a Service write that failed
# (validation, "already exists", a crash). A reservation therefore only blocks others while its owner Service
# holds that address or port, or while the claim may still be in flight: for a claim this process
# made, while the request that made it still runs; for another server's claim, for
# CLAIM_GRACE_SECONDS. Anything else is stale: another Service may take it over (compare-and-swap
# on the reservation's revision); the server that made it deletes it at its next allocation after
# the request (ServiceAllocator.sweep_later); the repair pass deletes what is left. Every claim
# rewrites the reservation, so a release or takeover that read it before fails on the revision
# and looks again. Deleting a Service releases its reservations at once (the strategy's
# after_delete).

ALLOCATION_PREFIX = "/registry/k8py/allocations/"
IP_PREFIX = ALLOCATION_PREFIX + "serviceips/"
PORT_PREFIX = ALLOCATION_PREFIX + "servicenodeports/"
# How long another server's claim counts as in flight. Longer than any request should take; a
# failed Service write on another server holds its explicitly requested address this long.
CLAIM_GRACE_SECONDS = 60.0
REPAIR_INTERVAL_SECONDS = 600.0

T = TypeVar("T", str, int)


def _family(version: int) -> str:
    return "IPv6" if version == 6 else "IPv4"


def ip_key(ip: str) -> str:
    return IP_PREFIX + ip


def port_key(port: int) -> str:
    return f"{PORT_PREFIX}{port}"


@dataclass(frozen=True, slots=True)
class Owner:
    namespace: str
    name: str
    uid: str


@dataclass(frozen=True, slots=True)
class Reservation:
    owner: Owner
    claimed: float  # wall-clock time of the claim; 0 when repair recorded an existing allocation
    by: str  # the ServiceAllocator (server process) that claimed it
    claim: str  # this claim's id
    revision: int  # of the reservation key


def held_keys(svc: Obj) -> set[str]:
    """The reservation keys of the addresses and node ports a stored Service holds."""
    spec = svc.get("spec") or {}
    keys = {ip_key(ip) for ip in spec.get("clusterIPs") or [spec.get("clusterIP")] if ip and isinstance(ip, str)
            and ip != "None"}
    for p in spec.get("ports") or []:
        if isinstance(p, dict) and isinstance(p.get("nodePort"), int) and p["nodePort"]:
            keys.add(port_key(p["nodePort"]))
    return keys


class ServiceAllocator:
    """ClusterIP and NodePort reservations in the store (see the comment above)."""

    def __init__(self, objects: Objects, svc_kind: KindInfo, *, clock: Callable[[], float] = time.time,
                 grace: float = CLAIM_GRACE_SECONDS, repair_interval: float = REPAIR_INTERVAL_SECONDS) -> None:
        self.objects = objects
        self.svc_kind = svc_kind
        self.id = uuid.uuid4().hex[:12]
        self._clock = clock
        self._grace = grace
        self._repair_interval = repair_interval
        self._inflight: dict[str, asyncio.Task[Any]] = {}  # claim id -> the request task that made it
        self._repair_lock = asyncio.Lock()
        self._repaired_at: float | None = None
        self._repair_task: asyncio.Task[None] | None = None
        # Keys to look at again once the request that touched them is over: ones it claimed (its
        # Service write may have failed) and ones its update stopped holding (a type change).
        self._sweeps: list[tuple[asyncio.Task[Any] | None, Owner, frozenset[str]]] = []

    # -- reservations ---------------------------------------------------------------------------
    def _encode(self, owner: Owner, claim: str, claimed: float) -> bytes:
        return orjson.dumps({"namespace": owner.namespace, "name": owner.name, "uid": owner.uid,
                             "claimed": claimed, "by": self.id if claimed else "", "claim": claim})

    @staticmethod
    def _decode(kv: KeyValue) -> Reservation:
        try:
            d = orjson.loads(kv.value)
            return Reservation(Owner(d["namespace"], d["name"], d.get("uid", "")), float(d.get("claimed", 0)),
                               d.get("by", ""), d.get("claim", ""), kv.mod_revision)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return Reservation(Owner("", "", ""), 0.0, "", "", kv.mod_revision)  # unreadable: stale

    def _in_flight(self, r: Reservation) -> bool:
        """May the Service write that made this claim still be under way?"""
        if not r.claimed or self._clock() - r.claimed >= self._grace:
            return False
        if r.by == self.id:
            task = self._inflight.get(r.claim)
            return task is not None and not task.done()
        return True

    async def _holds(self, owner: Owner, key: str) -> bool:
        svc = await self.objects.try_get(self.svc_kind, owner.namespace, owner.name) if owner.name else None
        return svc is not None and key in held_keys(svc)

    async def _blocks(self, r: Reservation, key: str, owner: Owner) -> bool:
        """Does reservation ``r`` keep ``owner`` from having ``key``?"""
        if (r.owner.namespace, r.owner.name) == (owner.namespace, owner.name):
            return False  # this Service's own (an earlier try, or an update of it)
        return self._in_flight(r) or await self._holds(r.owner, key)

    async def claim(self, key: str, owner: Owner, *, dry: bool = False) -> bool:
        """Reserve ``key`` for ``owner``; False if another Service has it. ``dry``: only tell."""
        claim = uuid.uuid4().hex[:12]
        value = self._encode(owner, claim, self._clock())
        if not dry:
            # Tracked before it is written: the moment the write lands, another request of this
            # server may read it, and must see it in flight.
            self._track(claim)
        for _ in range(16):
            if dry:
                cur = await self.objects.raw_get(key)
                if cur is None:
                    return True
            else:
                try:
                    await self.objects.raw_create(key, value)
                    return True
                except KeyExistsError as e:
                    cur = e.current if e.current is not None else await self.objects.raw_get(key)
                if cur is None:
                    continue  # released just now: try again
            if await self._blocks(self._decode(cur), key, owner):
                return False
            if dry:
                return True
            # Ours already, or stale: rewrite it. The compare-and-swap fails if anybody claimed or
            # released it since we read it; then we look again.
            try:
                await self.objects.raw_update(key, value, cur.mod_revision)
            except (ConflictError, KeyNotFoundError):
                continue
            return True
        raise errors.internal_error(f"could not reserve {key.rsplit('/', 1)[-1]}: too many concurrent changes")

    def _track(self, claim: str) -> None:
        task = asyncio.current_task()
        if task is None:
            return
        self._inflight[claim] = task
        task.add_done_callback(lambda _t: self._inflight.pop(claim, None))

    async def pick(self, prefix: str, candidates: Callable[[], Iterable[T]], parse: Callable[[str], T],
                   owner: Owner, *, dry: bool = False, exclude: set[T] | None = None) -> T | None:
        """Reserve one free value among ``candidates()`` (tried in order) for ``owner``; None if
        every one is taken, even after a repair pass has released the stale ones."""
        for attempt in range(2):
            res = await self.objects.raw_list(prefix)
            used: set[T] = set(exclude or ())
            for kv in res.kvs:
                with contextlib.suppress(ValueError):
                    used.add(parse(kv.key[len(prefix):]))
            for value in candidates():
                if value in used:
                    continue
                if await self.claim(prefix + str(value), owner, dry=dry):
                    return value
                used.add(value)
            if attempt == 0:
                await self.repair()
        return None

    async def release(self, svc: Obj) -> None:
        """Free what a just-deleted Service held, unless someone claimed it again meanwhile."""
        uid = (svc.get("metadata") or {}).get("uid", "")
        for key in sorted(held_keys(svc)):
            try:
                cur = await self.objects.raw_get(key)
                if cur is None or self._decode(cur).owner.uid != uid:
                    continue  # already released, or claimed again (by a new Service of the name)
                await self.objects.raw_delete(key, cur.mod_revision)
            except (ConflictError, KeyNotFoundError):
                continue  # claimed or released meanwhile
            except StoreError as e:
                # The Service is gone; the repair pass frees what is left.
                log.warning("could not release %s of deleted service: %s", key, e)

    def sweep_later(self, owner: Owner, keys: Iterable[str]) -> None:
        """Release those of ``keys`` that ``owner`` does not hold once the current request is over
        (done at this server's next allocation: that is when free values matter)."""
        if keys := frozenset(keys):
            self._sweeps.append((asyncio.current_task(), owner, keys))

    async def _run_sweeps(self) -> None:
        ready = [s for s in self._sweeps if s[0] is None or s[0].done()]
        if not ready:
            return
        self._sweeps = [s for s in self._sweeps if not (s[0] is None or s[0].done())]
        for _, owner, keys in ready:
            for key in sorted(keys):
                try:
                    cur = await self.objects.raw_get(key)
                    if cur is None:
                        continue
                    r = self._decode(cur)
                    if (r.owner.namespace, r.owner.name) != (owner.namespace, owner.name) or self._in_flight(r) \
                            or await self._holds(r.owner, key):
                        continue  # someone else's now, claimed again, or in use
                    await self.objects.raw_delete(key, cur.mod_revision)
                except (ConflictError, KeyNotFoundError):
                    continue  # claimed or released meanwhile
                except StoreError as e:
                    log.warning("could not release %s: %s (the repair pass will)", key, e)

    # -- repair ---------------------------------------------------------------------------------
    async def ensure_repaired(self) -> None:
        """Before this server's first allocation, a repair pass (it records what Services stored
        before reservations existed hold); later, one every repair interval, in the background.
        Also releases what finished requests left behind (:meth:`sweep_later`)."""
        if self._repaired_at is None:
            async with self._repair_lock:
                if self._repaired_at is None:
                    await self._repair()
            return
        await self._run_sweeps()
        due = self._clock() - self._repaired_at >= self._repair_interval
        if due and (self._repair_task is None or self._repair_task.done()):
            self._repair_task = asyncio.create_task(self.repair(), name="service-allocation-repair")

    async def repair(self) -> None:
        async with self._repair_lock:
            await self._repair()

    async def _repair(self) -> None:
        # Reservations are read before Services: a Service listed without a reservation in the
        # first list then either really lacks one or got it after that list; create-if-absent below
        # is right either way.
        reservations = (await self.objects.raw_list(ALLOCATION_PREFIX)).kvs
        services = (await self.objects.list(self.svc_kind, None)).items
        holders: dict[str, list[Owner]] = {}
        for svc in services:
            m = svc["metadata"]
            for key in held_keys(svc):
                holders.setdefault(key, []).append(Owner(m.get("namespace", ""), m["name"], m.get("uid", "")))
        for key, owners in holders.items():
            if len(owners) > 1:
                log.warning("%s is allocated to several services: %s", key.rsplit("/", 1)[-1],
                            ", ".join(f"{o.namespace}/{o.name}" for o in owners))
        reserved = {kv.key: kv for kv in reservations}
        created = rewritten = deleted = 0
        for key, owners in holders.items():
            if key in reserved:
                continue
            try:
                await self.objects.raw_create(key, self._encode(owners[0], "", 0.0))
                created += 1
            except KeyExistsError:
                pass
        for key, kv in reserved.items():
            r = self._decode(kv)
            if self._in_flight(r):
                continue
            holding = holders.get(key)
            try:
                if not holding:
                    await self.objects.raw_delete(key, kv.mod_revision)
                    deleted += 1
                elif (r.owner.namespace, r.owner.name) not in {(o.namespace, o.name) for o in holding}:
                    await self.objects.raw_update(key, self._encode(holding[0], "", 0.0), kv.mod_revision)
                    rewritten += 1
            except (ConflictError, KeyNotFoundError):
                pass  # claimed or released since the list: its new state is right
        self._repaired_at = self._clock()
        if created or rewritten or deleted:
            log.info("service address/port repair: %d recorded, %d reassigned, %d stale released",
                     created, rewritten, deleted)


class ServiceAllocation:
    """What a Service holds: its ClusterIP from the service CIDR and its NodePorts."""

    def __init__(self, objects: Objects, svc_kind: KindInfo, service_cidr: str) -> None:
        """``service_cidr``: one range, or an IPv4 and an IPv6 one separated by a comma (a
        dual-stack cluster; the first is the default family, as kube's
        ``--service-cluster-ip-range``)."""
        self.objects = objects
        nets = [ipaddress.ip_network(c.strip(), strict=False) for c in service_cidr.split(",") if c.strip()]
        self.nets: dict[str, ipaddress.IPv4Network | ipaddress.IPv6Network] = {_family(n.version): n for n in nets}
        self.service_net = nets[0]
        self.default_family = _family(nets[0].version)
        self.allocator = ServiceAllocator(objects, svc_kind)

    async def release(self, svc: Obj) -> None:
        """A deleted Service's addresses and node ports are free again."""
        await self.allocator.release(svc)

    async def allocate(self, svc: Obj, old: Obj | None, dry: bool) -> None:
        """Give ``svc`` (an update of ``old``, or a new Service) its ClusterIP and NodePorts."""
        spec = svc.setdefault("spec", {})
        stype = spec.get("type") or "ClusterIP"
        meta = svc["metadata"]
        owner = Owner(meta.get("namespace") or "", meta.get("name") or "", meta.get("uid") or "")
        old_spec = (old or {}).get("spec") or {}
        await self.allocator.ensure_repaired()
        try:
            await self._allocate(svc, spec, stype, owner, old, old_spec, dry)
        finally:
            if not dry:
                # Once this request is over, what the Service does not hold then is released: what
                # this request reserved if the write failed, and what an update stopped holding.
                self.allocator.sweep_later(owner, held_keys(svc) ^ (held_keys(old) if old else set()))

    async def _allocate(self, svc: Obj, spec: Obj, stype: str, owner: Owner, old: Obj | None, old_spec: Obj,
                        dry: bool) -> None:
        if stype != "ExternalName":
            await self._allocate_ips(spec, owner, old, old_spec, dry)
        if stype in ("NodePort", "LoadBalancer"):
            old_ports = {(p.get("name"), p.get("port")): p.get("nodePort") for p in old_spec.get("ports") or []}
            held = {int(p["nodePort"]) for p in old_spec.get("ports") or [] if p.get("nodePort")}
            taken: set[int] = set()  # this Service's ports so far
            for i, p in enumerate(spec.get("ports") or []):
                np = p.get("nodePort")
                if not np:
                    np = old_ports.get((p.get("name"), p.get("port")))
                if not np:
                    np = await self._pick_port(owner, dry, exclude=taken | held)
                elif np in taken and np != old_ports.get((p.get("name"), p.get("port"))):
                    raise self._port_taken(svc, i, np)
                elif isinstance(np, int) and np not in held and NODE_PORT_RANGE[0] <= np <= NODE_PORT_RANGE[1] \
                        and not await self.allocator.claim(port_key(np), owner, dry=dry):
                    # (Ports out of range are left to validation, which reports them.)
                    raise self._port_taken(svc, i, np)
                p["nodePort"] = np
                taken.add(np)
        else:
            for p in spec.get("ports") or []:
                p.pop("nodePort", None) if not p.get("nodePort") else None

    async def _allocate_ips(self, spec: Obj, owner: Owner, old: Obj | None, old_spec: Obj, dry: bool) -> None:
        """kube's patchAllocatedValues, initIPFamilyFields and allocClusterIPs: a ClusterIP of each
        of the Service's families, the ones asked for if they are in range and free."""
        had_ips = [] if old is None or old_spec.get("type") == "ExternalName" else list(old_spec.get("clusterIPs") or (
            [old_spec["clusterIP"]] if old_spec.get("clusterIP") else []))
        had = had_ips[0] if had_ips else None
        want = spec.get("clusterIP") or old_spec.get("clusterIP")
        cips = spec.get("clusterIPs")
        if want:
            spec["clusterIP"] = want
            if not cips or (had and want != had and cips == old_spec.get("clusterIPs")):
                # kube's normalizeClusterIPs: clusterIPs left out, or left as they were while
                # clusterIP changed, follow clusterIP; an update that leaves them out keeps the
                # old ones (changing an assigned address is refused by validation).
                spec["clusterIPs"] = had_ips if had_ips and want == had else [want]
        elif cips:
            spec["clusterIP"] = cips[0]
        if old is not None and had_ips and not spec.get("ipFamilies") and old_spec.get("ipFamilies") and \
                spec.get("clusterIPs") == had_ips:
            spec["ipFamilies"] = list(old_spec["ipFamilies"])
        self._init_ip_families(spec, owner, old_spec if old is not None else None)
        ips = list(spec.get("clusterIPs") or [])
        if ips and ips[0] == "None":
            return  # headless: no address
        if had and ips and ips[0] != had:
            return  # a change of an assigned address: validation refuses it, nothing is allocated
        fams = spec["ipFamilies"]
        ips += [""] * (len(fams) - len(ips))
        for i, fam in enumerate(fams):
            if not ips[i]:
                ips[i] = await self._pick_ip(owner, dry, fam)
            elif ips[i] not in had_ips:
                await self._check_ip(ips[i], owner, claim=not dry)
        spec["clusterIPs"] = ips[: len(fams)]
        spec["clusterIP"] = ips[0]

    def _init_ip_families(self, spec: Obj, owner: Owner, old_spec: Obj | None) -> None:
        """kube's initIPFamilyFields: the policy defaulted, the families inferred from the
        addresses and the cluster's ranges, and what this cluster cannot give refused."""
        headless_selectorless = spec.get("clusterIP") == "None" and not spec.get("selector")
        if spec.get("ipFamilyPolicy") is None:
            if old_spec is not None and old_spec.get("ipFamilyPolicy") is not None:
                spec["ipFamilyPolicy"] = old_spec["ipFamilyPolicy"]
            elif headless_selectorless:
                spec["ipFamilyPolicy"] = "RequireDualStack"
            else:
                spec["ipFamilyPolicy"] = "SingleStack"
        if errs := validate_cluster_ips(spec):
            raise errors.invalid_error("Service", "", owner.name, errs)
        policy = spec["ipFamilyPolicy"]
        cips = list(spec.get("clusterIPs") or [])
        fams = list(spec.get("ipFamilies") or [])
        errs = []
        if old_spec is not None and policy == "SingleStack":
            # setting the policy to single-stack is clear intent: the secondary goes
            if cips == list(old_spec.get("clusterIPs") or []) and len(cips) > 1:
                cips = spec["clusterIPs"] = cips[:1]
            if fams == list(old_spec.get("ipFamilies") or []) and len(fams) > 1:
                fams = spec["ipFamilies"] = fams[:1]
        if policy == "SingleStack":
            if len(cips) == 2:
                errs.append(errors.invalid("spec.ipFamilyPolicy", policy, "must be 'RequireDualStack' or "
                                           "'PreferDualStack' when multiple cluster IPs are specified"))
            if len(fams) == 2:
                errs.append(errors.invalid("spec.ipFamilyPolicy", policy, "must be 'RequireDualStack' or "
                                           "'PreferDualStack' when multiple IP families are specified"))
        for i, ip in enumerate(cips):
            if ip == "None":
                break
            fam = _family(6 if ":" in ip else 4)
            if i >= len(fams):
                if fam not in self.nets:
                    errs.append(errors.invalid(f"spec.clusterIPs[{i}]", cips, f"{fam} is not configured on this "
                                               "cluster"))
                else:
                    fams.append(fam)
        if errs:
            raise errors.invalid_error("Service", "", owner.name, errs)
        if headless_selectorless:
            fams = fams or [self.default_family]
            if len(fams) < 2 and policy != "SingleStack":
                fams.append("IPv6" if fams[0] == "IPv4" else "IPv4")
            spec["ipFamilies"] = fams
            return
        if policy == "RequireDualStack" and len(self.nets) < 2:
            errs.append(errors.invalid("spec.ipFamilyPolicy", policy,
                                       "this cluster is not configured for dual-stack services"))
        for i, fam in enumerate(fams):
            if fam not in self.nets:
                errs.append(errors.invalid(f"spec.ipFamilies[{i}]", fam, "not configured on this cluster"))
        if errs:
            raise errors.invalid_error("Service", "", owner.name, errs)
        fams = fams or [self.default_family]
        if policy != "SingleStack" and len(fams) == 1 and len(self.nets) == 2:
            fams.append("IPv6" if fams[0] == "IPv4" else "IPv4")
        spec["ipFamilies"] = fams

    @staticmethod
    def _port_taken(svc: Obj, i: int, np: int) -> errors.StatusError:
        return errors.invalid_error("Service", "", svc["metadata"].get("name", ""), [
            errors.invalid(f"spec.ports[{i}].nodePort", np, "provided port is already allocated")])

    def kubernetes_service_ip(self) -> str:
        return str(self.service_net.network_address + 1)

    async def _pick_ip(self, owner: Owner, dry: bool, family: str = "") -> str:
        net = self.nets.get(family) or self.service_net
        if owner.name == "kubernetes" and owner.namespace == "default" and net is self.service_net:
            ip = self.kubernetes_service_ip()
            await self._check_ip(ip, owner, claim=not dry)
            return ip
        size = net.num_addresses
        if size < 4:
            raise errors.internal_error("service CIDR too small")
        base = net.network_address

        def candidates() -> Iterator[str]:
            for _ in range(64):
                yield str(base + random.randint(2, min(size - 2, 1 << 20)))
            for off in range(2, size - 1):
                yield str(base + off)

        picked = await self.allocator.pick(IP_PREFIX, candidates, str, owner, dry=dry)
        if picked is None:
            raise errors.internal_error("failed to allocate a serviceIP: range is full")
        return picked

    async def _check_ip(self, want: str, owner: Owner, claim: bool) -> None:
        try:
            addr = ipaddress.ip_address(want)
        except ValueError:
            return  # validation reports the syntax
        name = owner.name
        net = self.nets.get(_family(addr.version))
        if net is None or addr not in net:
            valid = net or self.service_net
            raise errors.invalid_error("Service", "", name, [errors.invalid(
                "spec.clusterIPs", [want],
                f"failed to allocate IP {want}: provided IP is not in the valid range. "
                f"The range of valid IPs is {valid}")])
        if not await self.allocator.claim(ip_key(str(addr)), owner, dry=not claim):
            raise errors.invalid_error("Service", "", name, [errors.invalid(
                "spec.clusterIPs", [want], f"failed to allocate IP {want}: provided IP is already allocated")])

    async def _pick_port(self, owner: Owner, dry: bool, exclude: set[int]) -> int:
        lo, hi = NODE_PORT_RANGE

        def candidates() -> Iterator[int]:
            for _ in range(64):
                yield random.randint(lo, hi)
            yield from range(lo, hi + 1)

        port = await self.allocator.pick(PORT_PREFIX, candidates, int, owner, dry=dry, exclude=exclude)
        if port is None:
            raise errors.internal_error("failed to allocate a nodePort: range is full")
        return port
