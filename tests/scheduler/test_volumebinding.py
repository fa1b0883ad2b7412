"""The VolumeBinding plugin and its binder on fake listers and a fake API client: kube's
PreFilter, Filter, Reserve/Unreserve and PreBind answers for pods with claims."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from k8py.api.volume import ANN_BIND_COMPLETED, ANN_BOUND_BY_CONTROLLER, ANN_SELECTED_NODE
from k8py.client.errors import ConflictError
from k8py.scheduler.framework import CycleState, FitError
from k8py.scheduler.plugins.volumebinding import claim_of_pod, class_change_may_help
from k8py.scheduler.types import Code, parse_pod
from k8py.scheduler.volumebinder import (
    ERR_BIND_CONFLICT,
    ERR_NODE_CONFLICT,
    ERR_PV_NOT_EXIST,
    BindError,
    ClaimsError,
    VolumeBinder,
)

from .helpers import Env, node, pod

Obj = dict[str, Any]


class Store:
    """A lister over dicts keyed by (namespace, name)."""

    def __init__(self, *objs: Obj) -> None:
        self.objs: dict[tuple[str, str], Obj] = {}
        for o in objs:
            self.put(o)

    def put(self, o: Obj) -> Obj:
        m = o["metadata"]
        self.objs[(m.get("namespace") or "", m["name"])] = o
        return o

    def get(self, name: str, namespace: str | None = None) -> Obj | None:
        return self.objs.get((namespace or "", name))

    def list(self, namespace: str | None = None) -> list[Obj]:
        return [o for (ns, _), o in self.objs.items() if namespace is None or ns == namespace]


class FakeClient:
    """Records updates; bumps resourceVersion as the API server would."""

    def __init__(self, *stores: tuple[str, Store]) -> None:
        self.stores = dict(stores)
        self.updates: list[tuple[str, Obj]] = []
        self.conflict = False
        self.rv = 100

    async def update(self, kind: tuple[str, str], obj: Obj, namespace: str | None = None) -> Obj:
        if self.conflict:
            raise ConflictError({"reason": "Conflict", "message": "the object has been modified", "code": 409})
        self.rv += 1
        new = copy.deepcopy(obj)
        new["metadata"]["resourceVersion"] = str(self.rv)
        self.updates.append((kind[1], new))
        return new


def sc(name: str, mode: str = "WaitForFirstConsumer", provisioner: str = "rancher.io/local-path",
       topologies: list[Obj] | None = None) -> Obj:
    o: Obj = {"metadata": {"name": name, "resourceVersion": "1"}, "provisioner": provisioner,
              "volumeBindingMode": mode}
    if topologies is not None:
        o["allowedTopologies"] = topologies
    return o


def claim(name: str, cls: str = "local-path", size: str = "1Gi", *, volume: str = "", bound: bool = False,
          selected: str | None = None, owner: str | None = None, **meta: Any) -> Obj:
    ann: Obj = {}
    if bound:
        ann[ANN_BIND_COMPLETED] = "yes"
    if selected:
        ann[ANN_SELECTED_NODE] = selected
    o: Obj = {"kind": "PersistentVolumeClaim", "apiVersion": "v1",
              "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}", "resourceVersion": "5",
                           "annotations": ann, **meta},
              "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}},
                       "storageClassName": cls},
              "status": {"phase": "Bound" if bound else "Pending"}}
    if volume:
        o["spec"]["volumeName"] = volume
    if owner:
        o["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": owner,
                                             "controller": True}]
    return o


def volume(name: str, size: str = "1Gi", cls: str = "local-path", *, host: str | None = None,
           claim_ref: Obj | None = None, phase: str = "Available") -> Obj:
    o: Obj = {"kind": "PersistentVolume", "apiVersion": "v1",
              "metadata": {"name": name, "resourceVersion": "3"},
              "spec": {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"], "storageClassName": cls,
                       "hostPath": {"path": f"/data/{name}"}},
              "status": {"phase": phase}}
    if host:
        o["spec"]["nodeAffinity"] = {"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": [host]}]}]}}
    if claim_ref:
        o["spec"]["claimRef"] = claim_ref
    return o


def claim_pod(name: str = "p", *claims: str, ephemeral: str = "", uid: str | None = None) -> Obj:
    vols: list[Obj] = [{"name": f"v{i}", "persistentVolumeClaim": {"claimName": c}} for i, c in enumerate(claims)]
    if ephemeral:
        vols.append({"name": ephemeral, "ephemeral": {"volumeClaimTemplate": {"spec": {}}}})
    p = pod(name, volumes=vols)
    if uid:
        p["metadata"]["uid"] = uid
    return p


class World:
    """Nodes a and b, a framework with the default plugins, and a binder over fake caches."""

    def __init__(self, *, claims: tuple[Obj, ...] = (), volumes: tuple[Obj, ...] = (),
                 classes: tuple[Obj, ...] = (sc("local-path"), sc("fast", "Immediate", "example.com/fast")),
                 timeout: float = 2.0) -> None:
        self.env = Env(nodes=[node("a"), node("b", labels={"zone": "z2"})])
        self.pvcs, self.pvs, self.classes = Store(*claims), Store(*volumes), Store(*classes)
        self.client = FakeClient()
        cache = self.env.cache
        self.pods_gone: set[str] = set()

        def labels(n: str) -> Any:
            ni = cache.get_node(n)
            return ni.labels if ni is not None else None

        self.binder = VolumeBinder(self.client, self.pvcs, self.pvs, self.classes, node_labels=labels,
                                   pod_exists=lambda ns, name, uid: name not in self.pods_gone,
                                   bind_timeout=timeout, poll_interval=0.02)
        self.env.plugin("VolumeBinding").binder = self.binder

    def run(self, p: Obj) -> tuple[CycleState, str]:
        """A scheduling cycle through Reserve; (state, node)."""
        info = parse_pod(p)
        state = CycleState()
        res = self.env.fw.schedule(state, info)
        st = self.env.fw.run_reserve(state, info, res.node)
        assert st is None, st
        return state, res.node

    def fail_message(self, p: Obj) -> str:
        with pytest.raises(FitError) as e:
            self.env.fw.schedule(CycleState(), parse_pod(p))
        return e.value.message()


def test_pod_claims_include_ephemeral_volumes() -> None:
    info = parse_pod(claim_pod("web", "data", ephemeral="scratch"))
    assert info.pvcs == ("data", "web-scratch")


def test_missing_lost_deleted_and_foreign_claims_are_unschedulable() -> None:
    w = World(claims=(claim("lost", volume="gone"), claim("going", deletionTimestamp="2026-01-01T00:00:00Z"),
                      claim("p-eph", owner="someone-else")))
    w.pvcs.objs[("default", "lost")]["status"]["phase"] = "Lost"
    assert w.fail_message(claim_pod("p", "nope")) == '0/2 nodes are available: persistentvolumeclaim "nope" not found.'
    assert 'persistentvolumeclaim "lost" bound to non-existent persistentvolume "gone"' in \
        w.fail_message(claim_pod("p", "lost"))
    assert 'persistentvolumeclaim "going" is being deleted' in w.fail_message(claim_pod("p", "going"))
    assert "waiting for ephemeral volume controller to create the persistentvolumeclaim \"q-eph\"" in \
        w.fail_message(claim_pod("q", ephemeral="eph"))
    assert "PVC default/p-eph was not created for pod default/p (pod is not owner)" in \
        w.fail_message(claim_pod("p", ephemeral="eph", uid="mine"))


def test_unbound_immediate_claim_waits_for_the_pv_controller() -> None:
    w = World(claims=(claim("imm", "fast"),))
    assert w.fail_message(claim_pod("p", "imm")) == \
        "0/2 nodes are available: pod has unbound immediate PersistentVolumeClaims."
    # a claim without a class, or of a class that does not exist, is the PV controller's too
    w2 = World(claims=(claim("none", ""), claim("ghost", "no-such-class")))
    assert "unbound immediate" in w2.fail_message(claim_pod("p", "none"))
    assert "unbound immediate" in w2.fail_message(claim_pod("p", "ghost"))


def test_bound_claim_follows_its_pv_node_affinity() -> None:
    w = World(claims=(claim("data", volume="pv-a", bound=True), claim("orphan", volume="pv-x", bound=True)),
              volumes=(volume("pv-a", host="a", phase="Bound"),))
    _, n = w.run(claim_pod("p", "data"))
    assert n == "a"
    w.pvs.objs[("", "pv-a")]["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0][
        "values"] = ["elsewhere"]
    assert w.fail_message(claim_pod("q", "data")) == \
        f"0/2 nodes are available: 2 {ERR_NODE_CONFLICT}."
    assert ERR_PV_NOT_EXIST in w.fail_message(claim_pod("r", "orphan"))


def test_wait_for_first_consumer_static_pv_on_one_node() -> None:
    local = sc("local", provisioner="kubernetes.io/no-provisioner")  # static volumes only
    w = World(claims=(claim("data", "local"),), classes=(local,),
              volumes=(volume("pv-b", "2Gi", "local", host="b"), volume("pv-big", "9Gi", "local", host="b"),
                       volume("pv-small", "512Mi", "local", host="a")))
    state, n = w.run(claim_pod("p", "data"))
    assert n == "b"  # only b has a PV that fits
    vols = state.read("VolumeBinding").by_node["b"]
    assert [pv["metadata"]["name"] for pv, _ in vols.static_bindings] == ["pv-b"]  # the smallest that fits
    assumed = w.binder.pv_cache.get("pv-b")
    assert assumed is not None and assumed["spec"]["claimRef"]["uid"] == "uid-data"
    assert assumed["metadata"]["annotations"][ANN_BOUND_BY_CONTROLLER] == "yes"
    # the next pod's cycle sees pv-b as taken
    assert w.binder.pv_cache.list()[0]["spec"].get("claimRef") is not None


def test_wait_for_first_consumer_provisions_where_the_class_allows() -> None:
    zoned = sc("zoned", topologies=[{"matchLabelExpressions": [{"key": "zone", "values": ["z2"]}]}])
    nowhere = sc("static-only", provisioner="kubernetes.io/no-provisioner")
    w = World(claims=(claim("z", "zoned"), claim("s", "static-only")), classes=(zoned, nowhere))
    state, n = w.run(claim_pod("p", "z"))
    assert n == "b"
    vols = state.read("VolumeBinding").by_node["b"]
    assert vols.static_bindings == [] and [c["metadata"]["name"] for c in vols.dynamic_provisions] == ["z"]
    assumed = w.binder.pvc_cache.get("z", "default")
    assert assumed is not None and assumed["metadata"]["annotations"][ANN_SELECTED_NODE] == "b"
    assert w.fail_message(claim_pod("q", "s")) == \
        f"0/2 nodes are available: 2 {ERR_BIND_CONFLICT}."


def test_claim_already_selected_for_a_node_only_fits_there() -> None:
    w = World(claims=(claim("data", selected="a"),))
    _, n = w.run(claim_pod("p", "data"))
    assert n == "a"


def test_unreserve_reverts_the_assumed_objects() -> None:
    w = World(claims=(claim("data"),), volumes=(volume("pv-a", host="a"),))
    state, n = w.run(claim_pod("p", "data"))
    assert w.binder.pv_cache.get("pv-a")["spec"].get("claimRef")  # type: ignore[index]
    w.env.fw.run_unreserve(state, parse_pod(claim_pod("p", "data")), n)
    assert w.binder.pv_cache.get("pv-a")["spec"].get("claimRef") is None  # type: ignore[index]
    assert len(w.binder.pv_cache) == 0


async def test_pre_bind_writes_the_selected_node_and_waits_for_the_binding() -> None:
    w = World(claims=(claim("data"),))
    p = claim_pod("p", "data")
    state, n = w.run(p)
    task = asyncio.create_task(w.env.fw.run_pre_bind(state, parse_pod(p), n))
    await asyncio.sleep(0.05)
    assert not task.done()
    kind, written = w.client.updates[0]
    assert kind == "PersistentVolumeClaim" and written["metadata"]["annotations"][ANN_SELECTED_NODE] == n
    # the informer sees the write, then the provisioner's PV and the PV controller's binding
    w.pvcs.put(copy.deepcopy(written))
    w.binder.on_pvc(written)
    await asyncio.sleep(0.05)
    assert not task.done()
    w.pvs.put(volume("pvc-1", host=n, claim_ref={"name": "data", "namespace": "default", "uid": "uid-data"},
                     phase="Bound"))
    done = copy.deepcopy(written)
    done["metadata"]["resourceVersion"] = "200"
    done["metadata"]["annotations"][ANN_BIND_COMPLETED] = "yes"
    done["spec"]["volumeName"] = "pvc-1"
    w.pvcs.put(done)
    w.binder.on_pvc(done)
    assert await asyncio.wait_for(task, 2) is None


async def test_pre_bind_of_a_static_pv_writes_its_claim_ref() -> None:
    w = World(claims=(claim("data"),), volumes=(volume("pv-a", host="a"),))
    p = claim_pod("p", "data")
    state, n = w.run(p)
    task = asyncio.create_task(w.env.fw.run_pre_bind(state, parse_pod(p), n))
    await asyncio.sleep(0.05)
    kind, written = w.client.updates[0]
    assert kind == "PersistentVolume" and written["spec"]["claimRef"]["name"] == "data"
    w.pvs.put(written)
    bound = claim("data", volume="pv-a", bound=True)
    bound["metadata"]["resourceVersion"] = "300"
    w.pvcs.put(bound)
    w.binder.on_pvc(bound)
    assert await asyncio.wait_for(task, 2) is None


async def test_pre_bind_fails_when_provisioning_gives_up_or_time_runs_out() -> None:
    w = World(claims=(claim("data"),), timeout=0.3)
    p = claim_pod("p", "data")
    state, n = w.run(p)
    st = await w.env.fw.run_pre_bind(state, parse_pod(p), n)  # nobody provisions: the timeout
    assert st is not None and st.message == \
        'running PreBind plugin "VolumeBinding": binding volumes: timed out waiting for the condition'
    # the provisioner removed selected-node: it could not provision there
    w2 = World(claims=(claim("data"),))
    state, n = w2.run(p)
    task = asyncio.create_task(w2.env.fw.run_pre_bind(state, parse_pod(p), n))
    await asyncio.sleep(0.05)
    _, written = w2.client.updates[0]
    dropped = copy.deepcopy(written)
    dropped["metadata"]["resourceVersion"] = "400"
    del dropped["metadata"]["annotations"][ANN_SELECTED_NODE]
    w2.pvcs.put(dropped)
    w2.binder.on_pvc(dropped)
    st = await asyncio.wait_for(task, 2)
    assert st is not None and st.message == \
        'running PreBind plugin "VolumeBinding": binding volumes: provisioning failed for PVC "data"'


async def test_pre_bind_write_conflict_and_deleted_pod() -> None:
    w = World(claims=(claim("data"),))
    p = claim_pod("p", "data")
    state, n = w.run(p)
    w.client.conflict = True
    st = await w.env.fw.run_pre_bind(state, parse_pod(p), n)
    assert st is not None and "the object has been modified" in st.message
    assert len(w.binder.pvc_cache) == 0  # nothing written: the assumed claim went back
    w.client.conflict = False
    state, n = w.run(claim_pod("p2", "data"))
    w.pods_gone.add("p2")
    st = await w.env.fw.run_pre_bind(state, parse_pod(claim_pod("p2", "data")), n)
    assert st is not None and st.message == ('running PreBind plugin "VolumeBinding": binding volumes: pod does not '
                                             'exist any more: pods "p2" not found')


async def test_all_bound_pod_needs_no_pre_bind() -> None:
    w = World(claims=(claim("data", volume="pv-a", bound=True),), volumes=(volume("pv-a", phase="Bound"),))
    p = claim_pod("p", "data")
    state, n = w.run(p)
    assert await w.env.fw.run_pre_bind(state, parse_pod(p), n) is None
    assert w.client.updates == []


def test_binder_errors_for_a_class_without_binding_mode() -> None:
    bad = sc("bad")
    del bad["volumeBindingMode"]
    w = World(claims=(claim("data", "bad"),), classes=(bad,))
    with pytest.raises(ClaimsError, match='VolumeBindingMode not set for StorageClass "bad"'):
        w.binder.pod_volume_claims(claim_pod("p", "data"))
    w2 = World(claims=(claim("data"),), classes=())
    w2.binder.classes = Store(sc("local-path"))
    claims = w2.binder.pod_volume_claims(claim_pod("p", "data"))
    w2.binder.classes = Store()
    with pytest.raises(BindError, match='failed to find storage class "local-path"'):
        w2.binder.find_pod_volumes(claims, "a", {})


def test_queueing_hints() -> None:
    info = parse_pod(claim_pod("p", "data"))
    assert claim_of_pod(info, None, claim("data"))
    assert not claim_of_pod(info, None, claim("other"))
    assert class_change_may_help(info, None, sc("x"))
    assert not class_change_may_help(info, sc("x"), sc("x"))
    assert class_change_may_help(info, sc("x"), sc("x", topologies=[]))


def test_a_volume_reserved_for_one_pod_is_not_offered_to_the_next() -> None:
    local = sc("local", provisioner="kubernetes.io/no-provisioner")
    w = World(claims=(claim("one", "local"), claim("two", "local"), claim("three", "local")), classes=(local,),
              volumes=(volume("pv-a", "1Gi", "local", host="a"), volume("pv-b", "1Gi", "local", host="b")))
    _, first = w.run(claim_pod("p1", "one"))
    state2, second = w.run(claim_pod("p2", "two"))
    assert {first, second} == {"a", "b"}  # the assumed claimRef took the first PV out of the running
    taken = [pv["metadata"]["name"] for pv, _ in state2.read("VolumeBinding").by_node[second].static_bindings]
    assert taken == [f"pv-{second}"]
    assert ERR_BIND_CONFLICT in w.fail_message(claim_pod("p3", "three"))  # both taken: nothing left
    _, again = w.run(claim_pod("p4", "one"))  # another pod of claim one follows its (assumed) volume
    assert again == first


def test_assume_cache_lays_decisions_over_the_informer_until_it_moves_on() -> None:
    from k8py.scheduler.volumebinder import AssumeCache

    src = Store(volume("pv-a"))
    cache = AssumeCache(src)
    taken = copy.deepcopy(volume("pv-a"))
    taken["spec"]["claimRef"] = {"name": "data", "namespace": "default"}
    cache.assume(taken)
    assert cache.get("pv-a") is taken and cache.list() == [taken]
    assert cache.get_api("pv-a") is src.get("pv-a")  # PreBind's checks read the informer's version
    # the informer delivers a newer version (our write, or anyone's): it wins, the assumed one goes
    newer = src.put({**volume("pv-a"), "metadata": {"name": "pv-a", "resourceVersion": "9"}})
    cache.observed(newer)
    assert cache.get("pv-a") is newer and len(cache) == 0
    stale = copy.deepcopy(volume("pv-a"))  # resourceVersion 3: older than the cache's 9
    with pytest.raises(BindError, match="out of sync"):
        cache.assume(stale)
    with pytest.raises(BindError, match='"pv-gone" not found'):
        cache.assume({**volume("pv-gone")})
    cache.assume(copy.deepcopy(newer))
    cache.restore(newer)
    assert cache.get("pv-a") is newer


def test_read_write_once_pod_claim_is_one_pods_in_the_whole_cluster() -> None:
    from k8py.scheduler.plugins.volumerestrictions import ERR_RWOP_CONFLICT, shares_a_claim

    solo = claim("solo", volume="pv-a", bound=True)
    solo["spec"]["accessModes"] = ["ReadWriteOncePod"]
    shared = claim("shared", volume="pv-b", bound=True)
    w = World(claims=(solo, shared), volumes=(volume("pv-a", phase="Bound"), volume("pv-b", phase="Bound")))
    w.env.plugin("VolumeRestrictions").claims = w.pvcs
    first = claim_pod("first", "solo")
    w.env.schedule(first)  # assumed on a node: the claim is in use
    assert w.fail_message(claim_pod("second", "solo")) == f"0/2 nodes are available: 2 {ERR_RWOP_CONFLICT}."
    # a ReadWriteOnce claim may be shared; a claim that does not exist is kube's message
    w.env.schedule(claim_pod("a", "shared"))
    w.env.schedule(claim_pod("b", "shared"))
    assert w.fail_message(claim_pod("c", "missing")) == \
        '0/2 nodes are available: persistentvolumeclaim "missing" not found.'
    # the first pod's deletion may help the second, another pod's not
    second = parse_pod(claim_pod("second", "solo"))
    assert shares_a_claim(second, parse_pod(first), None)
    assert not shares_a_claim(second, parse_pod(claim_pod("a", "shared")), None)


def test_volume_binding_args() -> None:
    from k8py.scheduler.config import ConfigError, parse_config

    def refused(args: Obj) -> list[str]:
        with pytest.raises(ConfigError) as ei:
            parse_config({"apiVersion": "kubescheduler.config.k8s.io/v1", "kind": "KubeSchedulerConfiguration",
                          "profiles": [{"pluginConfig": [{"name": "VolumeBinding", "args": args}]}]})
        return ei.value.errors

    assert refused({"bindTimeoutSeconds": -1}) == [
        ("profiles[0].pluginConfig[0].args.bindTimeoutSeconds: Invalid value: -1: invalid BindTimeoutSeconds, "
         "should not be a negative value")]
    assert refused({"shape": [{"utilization": 0, "score": 0}]})[0].startswith(
        "profiles[0].pluginConfig[0].args.shape: Invalid value: ")
    ok = parse_config({"apiVersion": "kubescheduler.config.k8s.io/v1", "kind": "KubeSchedulerConfiguration",
                       "profiles": [{"pluginConfig": [{"name": "VolumeBinding", "args": {"bindTimeoutSeconds": 30}}]}]})
    assert ok.profiles[0].plugin_args["VolumeBinding"]["bindTimeoutSeconds"] == 30


def test_volume_zone_keeps_pods_with_zonal_volumes_in_their_zone() -> None:
    from k8py.scheduler.plugins.volumezone import ERR_CONFLICT, label_zones, topology_changed

    env = Env(nodes=[node("a", labels={"topology.kubernetes.io/zone": "z1"}),
                     node("b", labels={"topology.kubernetes.io/zone": "z2"}), node("plain")])
    z2 = volume("pv-z2", phase="Bound")
    z2["metadata"]["labels"] = {"failure-domain.beta.kubernetes.io/zone": "z2__z3"}  # beta label, two zones
    far = volume("pv-far", phase="Bound")
    far["metadata"]["labels"] = {"topology.kubernetes.io/zone": "z9"}
    claims = Store(claim("data", volume="pv-z2", bound=True), claim("far", volume="pv-far", bound=True),
                   claim("gone", volume="pv-gone", bound=True), claim("imm", "fast"), claim("none", ""),
                   claim("later"))
    plugin = env.plugin("VolumeZone")
    plugin.claims, plugin.volumes = claims, Store(z2, far)
    plugin.classes = Store(sc("local-path"), sc("fast", "Immediate", "example.com/fast"))

    def fits(p: Obj) -> set[str]:
        state = CycleState()
        info = parse_pod(p)
        st = plugin.pre_filter(state, info)
        if st is not None and st.code != Code.SKIP:
            return {st.message}
        return {n for n in ("a", "b", "plain") if plugin.filter(state, info, env.cache.get_node(n)) is None}

    assert fits(claim_pod("p", "data")) == {"b", "plain"}  # the node without zones fits too
    far_nodes = fits(claim_pod("p", "far"))
    assert far_nodes == {"plain"}
    st = plugin.filter(CycleState(), parse_pod(claim_pod("p", "far")), env.cache.get_node("a"))
    assert st is None  # no PreFilter state: nothing to check
    assert fits(claim_pod("p", "later")) == {"a", "b", "plain"}  # WaitForFirstConsumer: VolumeBinding's
    assert fits(claim_pod("p", "gone")) == {'persistentvolume "pv-gone" not found'}
    assert fits(claim_pod("p", "imm")) == {"PersistentVolume had no name"}
    assert fits(claim_pod("p", "none")) == {"PersistentVolumeClaim had no pv name and storageClass name"}
    assert ERR_CONFLICT == "node(s) had no available volume zone"
    assert label_zones("z1__z2") == {"z1", "z2"} and label_zones("z1__") is None
    assert topology_changed(parse_pod(claim_pod("p", "far")), z2, far)
    assert not topology_changed(parse_pod(claim_pod("p", "far")), far, copy.deepcopy(far))
