"""The scheduler's volume binding: the cost of one scheduling cycle (PreFilter, Filter on every
node, Reserve) of a pod with a WaitForFirstConsumer claim among local PersistentVolumes.

    python bench/volume_binding.py [--nodes 500] [--volumes 500] [--pods 50]

Builds ``--nodes`` nodes and ``--volumes`` Available local PVs (class ``local``, provisioner
``kubernetes.io/no-provisioner``, each with node affinity to one node, round robin) and
``--pods`` pods, each with its own unbound claim; schedules them one after the other on a
framework with the default plugins (no API server: the binder reads dict listers), and prints the
mean and the slowest cycle. Each pod takes one PV, which the next cycles see as taken.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from k8py.scheduler.cache import Cache
from k8py.scheduler.config import build_framework, default_config
from k8py.scheduler.framework import CycleState, Handle
from k8py.scheduler.queue import SchedulingQueue
from k8py.scheduler.types import parse_pod
from k8py.scheduler.volumebinder import VolumeBinder

Obj = dict[str, Any]


class Lister:
    def __init__(self, objs: list[Obj]) -> None:
        self.objs = {(o["metadata"].get("namespace") or "", o["metadata"]["name"]): o for o in objs}

    def get(self, name: str, namespace: str | None = None) -> Obj | None:
        return self.objs.get((namespace or "", name))

    def list(self, namespace: str | None = None) -> list[Obj]:
        return list(self.objs.values())


def node(i: int) -> Obj:
    alloc = {"cpu": "8", "memory": "32Gi", "pods": "110", "ephemeral-storage": "100Gi"}
    return {"metadata": {"name": f"n{i}", "labels": {"kubernetes.io/hostname": f"n{i}"}, "resourceVersion": "1"},
            "spec": {}, "status": {"allocatable": alloc, "capacity": alloc}}


def volume(i: int, nodes: int) -> Obj:
    return {"metadata": {"name": f"pv{i}", "resourceVersion": "1"},
            "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "local",
                     "local": {"path": f"/mnt/disk{i}"},
                     "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                         {"key": "kubernetes.io/hostname", "operator": "In", "values": [f"n{i % nodes}"]}]}]}}},
            "status": {"phase": "Available"}}


def claim(i: int) -> Obj:
    return {"metadata": {"name": f"c{i}", "namespace": "default", "uid": f"uc{i}", "resourceVersion": "1"},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "local",
                     "resources": {"requests": {"storage": "1Gi"}}}, "status": {"phase": "Pending"}}


def pod(i: int) -> Obj:
    return {"metadata": {"name": f"p{i}", "namespace": "default", "uid": f"up{i}", "resourceVersion": "1"},
            "spec": {"containers": [{"name": "c", "image": "busybox", "resources": {}}],
                     "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": f"c{i}"}}]},
            "status": {"phase": "Pending"}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=500)
    ap.add_argument("--volumes", type=int, default=500)
    ap.add_argument("--pods", type=int, default=50)
    args = ap.parse_args()
    cache = Cache()
    handle = Handle(cache, SchedulingQueue(), rand=random.Random(1))
    fw = build_framework(default_config().profiles[0], handle)
    for i in range(args.nodes):
        cache.add_node(node(i))
    classes = Lister([{"metadata": {"name": "local"}, "provisioner": "kubernetes.io/no-provisioner",
                       "volumeBindingMode": "WaitForFirstConsumer"}])
    binder = VolumeBinder(None, Lister([claim(i) for i in range(args.pods)]),
                          Lister([volume(i, args.nodes) for i in range(args.volumes)]), classes,
                          node_labels=lambda n: None, pod_exists=lambda ns, name, uid: True)
    fw.plugins["VolumeBinding"].binder = binder
    times = []
    for i in range(args.pods):
        info = parse_pod(pod(i))
        t0 = time.perf_counter()
        state = CycleState()
        res = fw.schedule(state, info)
        st = fw.run_reserve(state, info, res.node)
        times.append(time.perf_counter() - t0)
        assert st is None, st
    print(f"{args.nodes} nodes, {args.volumes} local PVs, {args.pods} pods with a claim each: "
          f"{sum(times) / len(times) * 1000:.1f} ms per cycle on average, slowest {max(times) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
