"""The PersistentVolume controller: binding claims to volumes (matching rules, pre-binding either
way, annotations, phases), the external provisioner's contract, WaitForFirstConsumer, the default
class, reclaim (Retain, Delete), lost claims. Unit tests call ``reconcile`` on a fake API; one test
runs the controller in an in-process cluster."""

from __future__ import annotations

import os
from typing import Any

from tests.controllers.test_nodelifecycle import make_ctx
from tests.helpers.cluster import InProcessCluster

from k8py.client.fake import FakeClient
from k8py.controllers.persistentvolume import (
    PV,
    PVC,
    STORAGE_CLASS,
    PersistentVolumeController,
    find_best_match,
)

Obj = dict[str, Any]
POD = ("v1", "Pod")


class Events:
    def __init__(self) -> None:
        self.items: list[tuple[str, str, str, str]] = []

    def event(self, obj: Obj, type_: str, reason: str, message: str, component: str | None = None) -> None:
        assert component == "persistentvolume-controller"  # kube's source of these events
        self.items.append((obj["metadata"]["name"], type_, reason, message))

    def reasons(self, name: str) -> list[str]:
        return [r for n, _, r, _ in self.items if n == name]


def pv(name: str, size: str = "1Gi", *, modes: tuple[str, ...] = ("ReadWriteOnce",), cls: str = "",
       labels: Obj | None = None, claim: Obj | None = None, policy: str = "Retain", path: str = "/srv/x",
       kind: str = "hostPath", mode: str = "Filesystem", annotations: Obj | None = None) -> Obj:
    spec: Obj = {"capacity": {"storage": size}, "accessModes": list(modes), "persistentVolumeReclaimPolicy": policy,
                 "volumeMode": mode, kind: {"path": path}}
    if cls:
        spec["storageClassName"] = cls
    if claim is not None:
        spec["claimRef"] = claim
    md: Obj = {"name": name, "labels": labels or {}}
    if annotations:
        md["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": md, "spec": spec,
            "status": {"phase": "Pending"}}


def pvc(name: str, size: str = "1Gi", *, modes: tuple[str, ...] = ("ReadWriteOnce",), cls: str | None = None,
        selector: Obj | None = None, volume: str = "", annotations: Obj | None = None) -> Obj:
    spec: Obj = {"accessModes": list(modes), "resources": {"requests": {"storage": size}}, "volumeMode": "Filesystem"}
    if cls is not None:
        spec["storageClassName"] = cls
    if selector is not None:
        spec["selector"] = selector
    if volume:
        spec["volumeName"] = volume
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": "default", "annotations": annotations or {}},
            "spec": spec, "status": {"phase": "Pending"}}


def storage_class(name: str, provisioner: str = "example.com/local", *, mode: str = "Immediate",
                  default: bool = False) -> Obj:
    md: Obj = {"name": name}
    if default:
        md["annotations"] = {"storageclass.kubernetes.io/is-default-class": "true"}
    return {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": md, "provisioner": provisioner,
            "reclaimPolicy": "Delete", "volumeBindingMode": mode}


def setup() -> tuple[PersistentVolumeController, FakeClient, Events]:
    ctx, api, _ = make_ctx({})
    ev = Events()
    ctx.recorder = ev  # type: ignore[assignment]
    return PersistentVolumeController(ctx), api, ev


async def settle(ctl: PersistentVolumeController, api: FakeClient, rounds: int = 4) -> None:
    """Sync every volume and claim a few times (what the queue would do)."""
    for _ in range(rounds):
        for v in api.all(PV):
            await ctl.reconcile(f"volume:{v['metadata']['name']}")
        for c in api.all(PVC):
            await ctl.reconcile(f"claim:default/{c['metadata']['name']}")


def get(api: FakeClient, kind: Any, name: str) -> Obj:
    o = api.get_obj(kind, name, "default" if kind == PVC else None)
    assert o is not None, name
    return o


async def test_claim_binds_the_smallest_fitting_volume_with_kube_annotations() -> None:
    ctl, api, _ = setup()
    for v in (pv("small", "500Mi"), pv("big", "10Gi"), pv("fit", "2Gi"), pv("rwx", "1Gi", modes=("ReadWriteMany",)),
              pv("classy", "1Gi", cls="fast")):
        api.put(PV, v)
    api.put(PVC, pvc("data", "1Gi"))
    await settle(ctl, api)
    claim = get(api, PVC, "data")
    assert claim["spec"]["volumeName"] == "fit"
    assert claim["metadata"]["annotations"] == {"pv.kubernetes.io/bind-completed": "yes",
                                                "pv.kubernetes.io/bound-by-controller": "yes"}
    assert claim["status"] == {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "2Gi"}}
    vol = get(api, PV, "fit")
    assert vol["status"]["phase"] == "Bound"
    ref = vol["spec"]["claimRef"]
    assert (ref["kind"], ref["namespace"], ref["name"], ref["uid"]) == \
        ("PersistentVolumeClaim", "default", "data", claim["metadata"]["uid"])
    assert vol["metadata"]["annotations"] == {"pv.kubernetes.io/bound-by-controller": "yes"}
    assert {get(api, PV, n)["status"]["phase"] for n in ("small", "big", "rwx", "classy")} == {"Available"}


def test_matching_rules() -> None:
    def avail(v: Obj) -> Obj:
        v["status"] = {"phase": "Available"}
        return v

    # fewer access modes first, even when bigger
    vols = [avail(pv("both", "1Gi", modes=("ReadWriteOnce", "ReadOnlyMany"))), avail(pv("rwo", "5Gi"))]
    assert find_best_match(pvc("c"), vols, False)["metadata"]["name"] == "rwo"  # type: ignore[index]
    # a claim asking two modes needs a volume with both
    assert find_best_match(pvc("c", modes=("ReadWriteOnce", "ReadOnlyMany")), vols, False)["metadata"]["name"] == "both"  # type: ignore[index]
    # selector, class, volume mode, capacity
    sel = {"matchLabels": {"tier": "gold"}}
    labelled = [avail(pv("plain", "1Gi")), avail(pv("gold", "3Gi", labels={"tier": "gold"}))]
    assert find_best_match(pvc("c", selector=sel), labelled, False)["metadata"]["name"] == "gold"  # type: ignore[index]
    assert find_best_match(pvc("c", cls="fast"), labelled, False) is None
    assert find_best_match(pvc("c"), [avail(pv("blk", mode="Block"))], False) is None
    assert find_best_match(pvc("c", "2Gi"), [avail(pv("tiny", "1Gi"))], False) is None
    # not Available yet (the controller has not seen it): skipped
    assert find_best_match(pvc("c"), [pv("new")], False) is None
    # WaitForFirstConsumer: only a volume pre-bound to the claim
    claim = pvc("c")
    claim["metadata"]["uid"] = "u1"
    pre = pv("pre", claim={"namespace": "default", "name": "c"})
    assert find_best_match(claim, [avail(pv("free"))], True) is None
    assert find_best_match(claim, [avail(pv("free")), pre], True)["metadata"]["name"] == "pre"  # type: ignore[index]


async def test_prebinding_either_way() -> None:
    ctl, api, ev = setup()
    api.put(PV, pv("reserved", "5Gi", claim={"namespace": "default", "name": "mine"}))
    api.put(PV, pv("other", "1Gi"))
    api.put(PV, pv("named", "3Gi"))
    api.put(PV, pv("tiny", "1Mi"))
    api.put(PVC, pvc("mine"))
    api.put(PVC, pvc("asks", volume="named"))
    api.put(PVC, pvc("too-big", "1Gi", volume="tiny"))
    await settle(ctl, api)
    mine = get(api, PVC, "mine")
    assert mine["spec"]["volumeName"] == "reserved" and mine["status"]["phase"] == "Bound"
    reserved = get(api, PV, "reserved")
    # the user's own pre-binding: the volume is not marked bound-by-controller
    assert "pv.kubernetes.io/bound-by-controller" not in (reserved["metadata"].get("annotations") or {})
    assert reserved["spec"]["claimRef"]["uid"] == mine["metadata"]["uid"]
    asks = get(api, PVC, "asks")
    assert asks["status"]["phase"] == "Bound"
    # the claim named its volume: the claim is not marked bound-by-controller, the volume is
    assert asks["metadata"]["annotations"] == {"pv.kubernetes.io/bind-completed": "yes"}
    assert get(api, PV, "named")["metadata"]["annotations"] == {"pv.kubernetes.io/bound-by-controller": "yes"}
    assert get(api, PVC, "too-big")["status"]["phase"] == "Pending"
    assert ("too-big", "Warning", "VolumeMismatch", 'Cannot bind to requested volume "tiny": requested PV is too small') \
        in ev.items
    assert get(api, PV, "other")["status"]["phase"] == "Available"


async def test_no_volume_and_no_class_is_an_event_then_a_new_volume_binds() -> None:
    ctl, api, ev = setup()
    api.put(PVC, pvc("lonely"))
    await settle(ctl, api, 1)
    assert ("lonely", "Normal", "FailedBinding", ("no persistent volumes available for this claim and no storage class "
            "is set")) in ev.items
    assert get(api, PVC, "lonely")["status"]["phase"] == "Pending"
    api.put(PV, pv("late"))
    await settle(ctl, api)
    assert get(api, PVC, "lonely")["spec"]["volumeName"] == "late"


async def test_default_class_is_assigned_retroactively_not_to_an_explicit_empty_class() -> None:
    ctl, api, _ = setup()
    api.put(PVC, pvc("unset"))
    api.put(PVC, pvc("empty", cls=""))
    api.put(STORAGE_CLASS, storage_class("std", default=True))
    await settle(ctl, api, 1)
    assert get(api, PVC, "unset")["spec"]["storageClassName"] == "std"
    assert get(api, PVC, "empty")["spec"]["storageClassName"] == ""


async def test_external_provisioning_contract() -> None:
    ctl, api, ev = setup()
    api.put(STORAGE_CLASS, storage_class("local", "rancher.io/local-path", mode="WaitForFirstConsumer"))
    api.put(STORAGE_CLASS, storage_class("now", "example.com/nfs"))
    api.put(STORAGE_CLASS, storage_class("intree", "kubernetes.io/no-provisioner"))
    api.put(PVC, pvc("wffc", cls="local"))
    api.put(PVC, pvc("imm", cls="now"))
    api.put(PVC, pvc("intree", cls="intree"))
    api.put(PVC, pvc("nocls", cls="missing"))
    api.put(POD, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "user", "namespace": "default"},
                  "spec": {"containers": [{"name": "c", "image": "i"}],
                           "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "wffc"}}]}})
    await settle(ctl, api, 1)
    # WaitForFirstConsumer: nothing for the provisioner until the scheduler picks a node
    assert "volume.kubernetes.io/storage-provisioner" not in get(api, PVC, "wffc")["metadata"]["annotations"]
    assert ("wffc", "Normal", "WaitForPodScheduled", "waiting for pod user to be scheduled") in ev.items
    # the pod goes: the plain event follows
    del api.objects[("v1", "Pod")]["default/user"]
    ctl.pods.store.remove("default/user")
    await ctl.reconcile("claim:default/wffc")
    assert ("wffc", "Normal", "WaitForFirstConsumer", "waiting for first consumer to be created before binding") \
        in ev.items
    imm = get(api, PVC, "imm")
    assert imm["metadata"]["annotations"]["volume.kubernetes.io/storage-provisioner"] == "example.com/nfs"
    assert imm["metadata"]["annotations"]["volume.beta.kubernetes.io/storage-provisioner"] == "example.com/nfs"
    assert ("imm", "Normal", "ExternalProvisioning", ("Waiting for a volume to be created either by the external "
            "provisioner 'example.com/nfs' or manually by the system administrator. If volume creation is delayed, "
            "please verify that the provisioner is running and correctly registered.")) in ev.items
    assert ("intree", "Warning", "ProvisioningFailed", "no volume plugin matched name: kubernetes.io/no-provisioner") \
        in ev.items
    assert ("nocls", "Warning", "ProvisioningFailed", 'storageclass.storage.k8s.io "missing" not found') in ev.items
    # the scheduler selects a node: now the provisioner is asked
    w = get(api, PVC, "wffc")
    w["metadata"]["annotations"]["volume.kubernetes.io/selected-node"] = "node-1"
    api.put(PVC, w)
    await ctl.reconcile("claim:default/wffc")
    w = get(api, PVC, "wffc")
    assert w["metadata"]["annotations"]["volume.kubernetes.io/storage-provisioner"] == "rancher.io/local-path"
    # the provisioner's PV arrives already pointing at the claim: it is bound
    ref = {"kind": "PersistentVolumeClaim", "apiVersion": "v1", "namespace": "default", "name": "wffc",
           "uid": w["metadata"]["uid"]}
    made = pv("pvc-1", cls="local", claim=ref, policy="Delete",
              annotations={"pv.kubernetes.io/provisioned-by": "rancher.io/local-path"})
    made["status"] = {"phase": "Bound"}
    api.put(PV, made)
    await settle(ctl, api)
    w = get(api, PVC, "wffc")
    assert w["spec"]["volumeName"] == "pvc-1" and w["status"]["phase"] == "Bound"
    assert get(api, PV, "pvc-1")["status"]["phase"] == "Bound"
    # its claim deleted: Released, and the external provisioner (not this controller) deletes it
    api.objects[PVC].pop("default/wffc")
    ctl.claims.store.remove("default/wffc")
    await settle(ctl, api)
    assert get(api, PV, "pvc-1")["status"]["phase"] == "Released"
    assert ("delete", "PersistentVolume", "pvc-1") not in api.writes


async def test_reclaim_policies(tmp_path: Any) -> None:
    ctl, api, ev = setup()
    doomed = "/tmp/" + os.path.basename(str(tmp_path)) + "-k8py-pv-doomed"
    os.makedirs(doomed, exist_ok=True)
    try:
        api.put(PV, pv("keep", policy="Retain"))
        api.put(PV, pv("tmp", policy="Delete", path=doomed))
        api.put(PV, pv("elsewhere", policy="Delete", path="/srv/data"))
        api.put(PV, pv("local", policy="Delete", kind="local", path="/mnt/disk"))
        for n in ("a", "b", "c", "d"):
            api.put(PVC, pvc(n))
        await settle(ctl, api)
        bound = {get(api, PVC, n)["spec"]["volumeName"] for n in "abcd"}
        assert bound == {"keep", "tmp", "elsewhere", "local"}
        for n in "abcd":
            api.objects[PVC].pop(f"default/{n}")
            ctl.claims.store.remove(f"default/{n}")
        await settle(ctl, api)
        keep = get(api, PV, "keep")
        assert keep["status"]["phase"] == "Released" and keep["spec"]["claimRef"]["name"] in "abcd"
        assert api.get_obj(PV, "tmp") is None and not os.path.exists(doomed)
        el = get(api, PV, "elsewhere")
        assert el["status"] == {"phase": "Failed", "message": "host_path deleter only supports /tmp/.+ but received "
                                                              "provided /srv/data"}
        loc = get(api, PV, "local")
        msg = 'error getting deleter volume plugin for volume "local": no deletable volume plugin matched'
        assert loc["status"] == {"phase": "Failed", "message": msg}
        assert ("local", "Warning", "VolumeFailedDelete", msg) in ev.items
    finally:
        if os.path.isdir(doomed):
            os.rmdir(doomed)


async def test_a_bound_claim_whose_volume_is_gone_is_lost() -> None:
    ctl, api, ev = setup()
    api.put(PV, pv("v"))
    api.put(PVC, pvc("c"))
    await settle(ctl, api)
    assert get(api, PVC, "c")["status"]["phase"] == "Bound"
    api.objects[PV].pop("/v")
    ctl.volumes.store.remove("v")
    await ctl.reconcile("claim:default/c")
    assert get(api, PVC, "c")["status"]["phase"] == "Lost"
    assert ("c", "Warning", "ClaimLost", "Bound claim has lost its PersistentVolume. Data on the volume is lost!") \
        in ev.items
    await ctl.reconcile("claim:default/c")
    assert ev.reasons("c").count("ClaimLost") == 1  # once, when the phase changes


async def test_binding_in_a_cluster() -> None:
    async with InProcessCluster(controllers=["persistentvolume-binder", "pvc-protection", "pv-protection"]) as c:
        await c.client.create(PVC, {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
                                    "spec": {"accessModes": ["ReadWriteOnce"],
                                             "resources": {"requests": {"storage": "1Gi"}}}}, "default")
        vol = pv("disk", "2Gi")
        vol.pop("status")
        await c.client.create(PV, vol)

        async def bound() -> bool:
            claim = await c.client.get(PVC, "data", "default")
            v = await c.client.get(PV, "disk")
            return (claim.get("status") or {}).get("phase") == "Bound" and v["status"]["phase"] == "Bound"

        # within the 15 s resync: the new volume woke the waiting claim
        await c.until(bound, timeout=10, what="claim and volume Bound")
        claim = await c.client.get(PVC, "data", "default")
        assert claim["status"]["capacity"] == {"storage": "2Gi"}
        await c.client.delete(PVC, "data", "default")

        async def released() -> bool:
            return (await c.client.get(PV, "disk"))["status"]["phase"] == "Released"

        await c.until(released, timeout=20, what="volume Released (Retain)")


def test_default_class_choice() -> None:
    from k8py.api.volume import default_class

    def sc(name: str, created: str, default: str | None = "true", beta: bool = False) -> Obj:
        md: Obj = {"name": name, "creationTimestamp": created}
        if default is not None:
            key = "storageclass.beta.kubernetes.io/is-default-class" if beta else \
                "storageclass.kubernetes.io/is-default-class"
            md["annotations"] = {key: default}
        return {"metadata": md}

    assert default_class([sc("a", "2026-01-01T00:00:00Z", None), sc("b", "2026-01-01T00:00:00Z", "false")]) is None
    got = default_class([sc("old", "2026-01-01T00:00:00Z"), sc("new", "2026-02-01T00:00:00Z", beta=True),
                         sc("plain", "2026-03-01T00:00:00Z", None)])
    assert got is not None and got["metadata"]["name"] == "new"  # the newest default
    got = default_class([sc("z", "2026-01-01T00:00:00Z"), sc("y", "2026-01-01T00:00:00Z")])
    assert got is not None and got["metadata"]["name"] == "y"  # same age: by name


async def test_default_storage_class_admission() -> None:
    async with InProcessCluster(controllers=()) as c:
        def claim(name: str, cls: str | None) -> Obj:
            spec: Obj = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
            if cls is not None:
                spec["storageClassName"] = cls
            return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name}, "spec": spec}

        before = await c.client.create(PVC, claim("before", None), "default")
        assert "storageClassName" not in before["spec"]  # no default class yet: none given
        await c.client.create(STORAGE_CLASS, storage_class("std", default=True))
        await c.client.create(STORAGE_CLASS, storage_class("other"))
        got = await c.client.create(PVC, claim("unset", None), "default")
        assert got["spec"]["storageClassName"] == "std"
        got = await c.client.create(PVC, claim("empty", ""), "default")
        assert got["spec"]["storageClassName"] == ""
        got = await c.client.create(PVC, claim("named", "other"), "default")
        assert got["spec"]["storageClassName"] == "other"
        # only at creation
        got = await c.client.get(PVC, "before", "default")
        assert "storageClassName" not in got["spec"]


async def test_volume_phase_transition_time() -> None:
    async with InProcessCluster(controllers=()) as c:
        vol = pv("disk")
        vol.pop("status")
        made = await c.client.create(PV, vol)
        assert made["status"]["phase"] == "Pending" and made["status"]["lastPhaseTransitionTime"]
        made["status"] = {"phase": "Available", "lastPhaseTransitionTime": "2020-01-01T00:00:00Z"}
        got = await c.client.update_status(PV, made)
        assert got["status"]["lastPhaseTransitionTime"] == "2020-01-01T00:00:00Z"  # the writer's own time
        got["status"]["phase"] = "Bound"
        got = await c.client.update_status(PV, got)
        assert got["status"]["lastPhaseTransitionTime"] > "2020-01-01T00:00:00Z"  # a new phase: now
        again = await c.client.update_status(PV, {**got, "status": {**got["status"], "message": "x"}})
        assert again["status"]["lastPhaseTransitionTime"] == got["status"]["lastPhaseTransitionTime"]


async def test_a_volume_whose_claim_went_elsewhere_is_unbound() -> None:
    ctl, api, _ = setup()
    api.put(PV, pv("chosen"))
    api.put(PVC, pvc("c"))
    await settle(ctl, api)
    uid = get(api, PVC, "c")["metadata"]["uid"]
    ref = {"kind": "PersistentVolumeClaim", "apiVersion": "v1", "namespace": "default", "name": "c", "uid": uid}
    # a second binder (another controller instance, the scheduler) bound the same claim to these
    api.put(PV, {**pv("by-controller", claim=ref), "metadata": {
        "name": "by-controller", "annotations": {"pv.kubernetes.io/bound-by-controller": "yes"}}})
    api.put(PV, pv("by-user", claim=ref))
    api.put(PV, pv("provisioned", claim=ref, policy="Delete",
                   annotations={"pv.kubernetes.io/provisioned-by": "example.com/nfs"}))
    for n in ("by-controller", "by-user", "provisioned"):
        await ctl.reconcile(f"volume:{n}")
    v = get(api, PV, "by-controller")
    assert "claimRef" not in v["spec"] and v["status"]["phase"] == "Available"
    assert not v["metadata"].get("annotations")
    v = get(api, PV, "by-user")  # the user's pre-binding stays, without the uid
    assert v["spec"]["claimRef"]["name"] == "c" and "uid" not in v["spec"]["claimRef"]
    assert v["status"]["phase"] == "Available"
    # a volume provisioned for it is not needed: Released, for its provisioner to delete
    assert get(api, PV, "provisioned")["status"]["phase"] == "Released"
    assert get(api, PVC, "c")["spec"]["volumeName"] == "chosen"


async def test_claim_resize_admission() -> None:
    from k8py.client.errors import ApiError

    async with InProcessCluster(controllers=["persistentvolume-binder", "pvc-protection", "pv-protection"]) as c:
        fast = storage_class("fast", "example.com/x")
        fast["allowVolumeExpansion"] = True
        await c.client.create(STORAGE_CLASS, fast)
        for name, cls in (("plain", ""), ("quick", "fast")):
            vol = pv(f"pv-{name}", "10Gi", cls=cls)
            vol.pop("status")
            await c.client.create(PV, vol)
            made = pvc(name, "1Gi", cls=cls)
            made.pop("status")
            made["metadata"].pop("annotations")
            await c.client.create(PVC, made, "default")

        async def bound() -> bool:
            phases = [((await c.client.get(PVC, n, "default")).get("status") or {}).get("phase")
                      for n in ("plain", "quick")]
            return phases == ["Bound", "Bound"]

        await c.until(bound, what="both claims Bound")

        async def grow(name: str) -> Obj:
            claim = await c.client.get(PVC, name, "default")
            claim["spec"]["resources"]["requests"]["storage"] = "2Gi"
            return await c.client.update(PVC, claim, "default")

        try:
            await grow("plain")
            raise AssertionError("a claim whose class does not allow expansion grew")
        except ApiError as e:
            assert e.code == 403
            assert e.message == ('persistentvolumeclaims "plain" is forbidden: only dynamically provisioned pvc can be '
                                 "resized and the storageclass that provisions the pvc must support resize")
        grown = await grow("quick")
        assert grown["spec"]["resources"]["requests"]["storage"] == "2Gi"


async def test_own_writes_win_over_a_stale_cache_until_it_catches_up() -> None:
    ctl, api, _ = setup()
    api.put(PV, pv("v"))
    api.put(PVC, pvc("c"))
    await ctl.reconcile("volume:v")
    before = get(api, PV, "v")
    assert before["status"]["phase"] == "Available"
    await ctl.reconcile("claim:default/c")  # binds: the volume's claimRef, then its phase
    after = get(api, PV, "v")
    assert after["status"]["phase"] == "Bound"
    ctl.volumes.store.put(before)  # the watch has not delivered the controller's own writes yet
    seen = ctl._volume("v")  # the own-writes cache is what is under test
    assert seen is not None and seen["metadata"]["resourceVersion"] == after["metadata"]["resourceVersion"]
    writes = len(api.writes)
    await ctl.reconcile("volume:v")
    await ctl.reconcile("claim:default/c")
    assert len(api.writes) == writes  # nothing done again from the stale state
    ctl.volumes.store.put(after)  # caught up
    await ctl.reconcile("resync")
    assert not ctl._written


async def test_a_new_available_volume_wakes_the_waiting_claims_once() -> None:
    ctl, api, _ = setup()
    api.put(PVC, pvc("waiting"))
    done = pvc("done")
    done["metadata"]["annotations"] = {"pv.kubernetes.io/bind-completed": "yes"}
    api.put(PVC, done)

    def drain() -> list[str]:
        out = []
        while (k := ctl.controller.queue.get_nowait()) is not None:
            ctl.controller.queue.done(k)
            out.append(k)
        return out

    drain()
    for i in range(50):  # a burst of new volumes
        v = pv(f"v{i}")
        v["status"] = {"phase": "Available"}
        ctl._volume_keys(v)  # the informer handler's mapping
    assert drain() == ["wake"]
    await ctl.reconcile("wake")
    assert drain() == ["claim:default/waiting"]  # not the bound one
    pending = pv("new")  # not Available yet (the controller has not looked at it): nothing to wake for
    ctl._volume_keys(pending)
    assert drain() == []
