"""The shared PV helpers (kube's component-helpers/storage/volume): matching claims to volumes,
node affinity, allowed topologies, binding a volume to a claim."""

from __future__ import annotations

from typing import Any

from k8py.api import volume as v

Obj = dict[str, Any]


def pvc(name: str = "data", size: str = "1Gi", cls: str | None = "fast", *, uid: str = "u1", modes: tuple[str, ...] =
        ("ReadWriteOnce",), selector: Obj | None = None, mode: str | None = None) -> Obj:
    spec: Obj = {"accessModes": list(modes), "resources": {"requests": {"storage": size}}}
    if cls is not None:
        spec["storageClassName"] = cls
    if selector is not None:
        spec["selector"] = selector
    if mode:
        spec["volumeMode"] = mode
    return {"metadata": {"name": name, "namespace": "ns", "uid": uid, "resourceVersion": "7"}, "spec": spec}


def pv(name: str, size: str, cls: str = "fast", *, phase: str = "Available", host: str | None = None,
       claim: Obj | None = None, labels: Obj | None = None, modes: tuple[str, ...] = ("ReadWriteOnce",)) -> Obj:
    spec: Obj = {"capacity": {"storage": size}, "storageClassName": cls, "accessModes": list(modes)}
    if host:
        spec["nodeAffinity"] = {"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": [host]}]}]}}
    if claim:
        spec["claimRef"] = claim
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": spec, "status": {"phase": phase}}


def test_smallest_available_volume_of_the_class_that_fits() -> None:
    vols = [pv("big", "10Gi"), pv("small", "512Mi"), pv("fit", "2Gi"), pv("other", "1Gi", "slow"),
            pv("released", "1Gi", phase="Released")]
    assert v.find_matching_volume(pvc(), vols)["metadata"]["name"] == "fit"  # type: ignore[index]
    assert v.find_matching_volume(pvc(cls=None), vols) is None  # no class matches only classless volumes


def test_prebound_volume_wins_and_delay_binding_returns_only_it() -> None:
    mine = pv("mine", "5Gi", claim={"namespace": "ns", "name": "data"})
    theirs = pv("theirs", "1Gi", claim={"namespace": "ns", "name": "other"})
    assert v.find_matching_volume(pvc(), [pv("fit", "1Gi"), mine, theirs]) is mine
    assert v.find_matching_volume(pvc(), [pv("fit", "1Gi")], delay_binding=True) is None
    assert v.find_matching_volume(pvc(), [mine], delay_binding=True) is mine
    # a claimRef naming another uid is another claim's
    assert v.find_matching_volume(pvc(), [pv("x", "1Gi", claim={"namespace": "ns", "name": "data", "uid": "u2"})]) \
        is None


def test_scheduler_path_checks_node_affinity_and_access_modes() -> None:
    vols = [pv("on-a", "1Gi", host="a"), pv("rwx", "1Gi", modes=("ReadWriteMany",))]
    got = v.find_matching_volume(pvc(), vols, node_labels={"kubernetes.io/hostname": "a"})
    assert got is not None and got["metadata"]["name"] == "on-a"
    assert v.find_matching_volume(pvc(), vols[:1], node_labels={"kubernetes.io/hostname": "b"}) is None
    # the chosen volume of another claim is excluded
    assert v.find_matching_volume(pvc(), vols[:1], node_labels={"kubernetes.io/hostname": "a"},
                                  excluded={"on-a"}) is None
    # a pre-bound volume whose affinity excludes the node: no match at all
    pre = pv("pre", "1Gi", host="a", claim={"namespace": "ns", "name": "data"})
    assert v.find_matching_volume(pvc(), [pre, pv("free", "1Gi")], node_labels={"kubernetes.io/hostname": "b"}) \
        is None


def test_selector_and_volume_mode() -> None:
    vols = [pv("plain", "1Gi"), pv("gold", "1Gi", labels={"tier": "gold"})]
    got = v.find_matching_volume(pvc(selector={"matchLabels": {"tier": "gold"}}), vols)
    assert got is not None and got["metadata"]["name"] == "gold"
    assert v.find_matching_volume(pvc(mode="Block"), vols) is None


def test_node_affinity_and_allowed_topologies() -> None:
    assert v.check_node_affinity(pv("p", "1Gi"), {})
    assert v.check_node_affinity(pv("p", "1Gi", host="a"), {"kubernetes.io/hostname": "a"})
    assert not v.check_node_affinity(pv("p", "1Gi", host="a"), {"kubernetes.io/hostname": "b"})
    zone = [{"matchLabelExpressions": [{"key": "zone", "values": ["z1", "z2"]}]}]
    assert v.match_topology_terms(None, {})
    assert v.match_topology_terms(zone, {"zone": "z2"})
    assert not v.match_topology_terms(zone, {"zone": "z3"})
    assert not v.match_topology_terms([{}], {"zone": "z1"})  # a term without expressions admits none


def test_claim_class_and_binding_state() -> None:
    c = pvc(cls="fast")
    c["metadata"]["annotations"] = {v.ANN_BETA_STORAGE_CLASS: "beta"}
    assert v.claim_class(c) == "beta"
    assert v.claim_request(pvc(size="2Gi")) == 2 * 1024 ** 3
    bound = pvc()
    bound["spec"]["volumeName"] = "pv1"
    assert not v.is_fully_bound(bound)
    bound["metadata"]["annotations"] = {v.ANN_BIND_COMPLETED: "yes"}
    assert v.is_fully_bound(bound)


def test_bind_volume_to_claim() -> None:
    new, dirty = v.bind_volume_to_claim(pv("p", "1Gi"), pvc())
    assert dirty
    assert new["spec"]["claimRef"] == {"kind": "PersistentVolumeClaim", "namespace": "ns", "name": "data",
                                       "uid": "u1", "apiVersion": "v1", "resourceVersion": "7"}
    assert new["metadata"]["annotations"] == {v.ANN_BOUND_BY_CONTROLLER: "yes"}
    # pre-bound by the user (no uid yet): the uid is filled in, but it stays the user's binding
    user, dirty = v.bind_volume_to_claim(pv("p", "1Gi", claim={"namespace": "ns", "name": "data"}), pvc())
    assert dirty and user["spec"]["claimRef"]["uid"] == "u1"
    assert v.ANN_BOUND_BY_CONTROLLER not in user["metadata"].get("annotations", {})
    again, dirty = v.bind_volume_to_claim(new, pvc())
    assert not dirty and again == new


def test_candidates_once_for_many_nodes() -> None:
    # a local volume's hostname affinity (a set lookup) and any other affinity (a full match) agree
    zoned = pv("zoned", "1Gi")
    zoned["spec"]["nodeAffinity"] = {"required": {"nodeSelectorTerms": [{"matchExpressions": [
        {"key": "zone", "operator": "NotIn", "values": ["z9"]}]}]}}
    two = pv("two", "2Gi")
    two["spec"]["nodeAffinity"] = {"required": {"nodeSelectorTerms": [{"matchExpressions": [
        {"key": "kubernetes.io/hostname", "operator": "In", "values": ["a", "b"]}]}]}}
    cands = v.VolumeCandidates.of(pvc(), [two, pv("on-c", "1Gi", host="c"), zoned], scheduler=True)
    assert [c.name for c in cands.others] == ["on-c", "zoned", "two"]  # smallest first, stable among equals

    def pick(labels: dict[str, str], excluded: tuple[str, ...] = ()) -> str | None:
        got = cands.pick(labels, excluded)
        return None if got is None else str(got["metadata"]["name"])
    assert pick({"kubernetes.io/hostname": "c"}) == "on-c"
    assert pick({"kubernetes.io/hostname": "a", "zone": "z9"}) == "two"
    assert pick({"kubernetes.io/hostname": "a"}) == "zoned"
    assert pick({"kubernetes.io/hostname": "c"}, ("on-c",)) == "zoned"
    assert pick({"kubernetes.io/hostname": "d", "zone": "z9"}) is None
    for labels in ({"kubernetes.io/hostname": h, "zone": z} for h in "abcd" for z in ("z1", "z9")):
        whole = v.find_matching_volume(pvc(), [two, pv("on-c", "1Gi", host="c"), zoned], node_labels=labels)
        assert pick(labels) == (whole["metadata"]["name"] if whole is not None else None)
