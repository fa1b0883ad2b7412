"""A whole node, put together: the image store, the CNI pod network, the runc runtime, the
kubelet API (port 10250) and the agent. ``k8py server`` runs one for its own node, ``k8py
agent`` runs one on another machine; both call :func:`run_node` with an API client whose
credentials are the node's own (``system:node:<name>``).

The pod network needs the node's pod CIDR, which node IPAM in the controller manager gives
after the Node registers: :class:`NodeNetwork` holds sandbox creation back until it is known
(a short wait, then ``FailedCreatePodSandBox`` and kubelet's retry), and keeps the routes to the
other nodes' pod CIDRs (flannel's host-gw) in step with the Nodes it watches.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from k8py.client.api import Client
from k8py.client.informer import Informer
from k8py.kubelet.agent import CONTAINER_GC_PERIOD, Agent, AgentConfig
from k8py.kubelet.cni import CNINetwork
from k8py.kubelet.eviction import EvictionConfig, config_from_flags
from k8py.kubelet.images import ImageStore, airgap_dir, store_dir
from k8py.kubelet.runtime.runc import RuncRuntime
from k8py.kubelet.runtime.types import SandboxConfig, SandboxError
from k8py.kubelet.server import KubeletServer
from k8py.kubelet.volumes import teardown_dir

__all__ = ["NodeNetwork", "NodeOptions", "missing_prerequisites", "node_paths", "run_node", "teardown"]

log = logging.getLogger("k8py.kubelet")
NODE = ("v1", "Node")
NETWORK_WAIT = 30.0  # seconds a sandbox waits for the node's pod CIDR before failing
IO_THREADS = 64


@dataclass(frozen=True, slots=True)
class NodeOptions:
    node_name: str
    data_dir: str  # k8py's data dir; the node's state is under <data_dir>/agent
    node_ips: tuple[str, ...] = ()
    cluster_cidrs: tuple[str, ...] = ()
    cluster_dns: tuple[str, ...] = ()
    system_reserved: Mapping[str, str] = field(default_factory=dict)
    kube_reserved: Mapping[str, str] = field(default_factory=dict)
    max_pods: int = 110
    kubelet_port: int = 10250
    kubelet_bind: str = "0.0.0.0"
    serving_cert: str = ""  # the kubelet API's certificate and key files
    serving_key: str = ""
    client_ca: str = ""  # verifies the API server's client certificate
    bridge: str = "k8py0"
    labels: Mapping[str, str] = field(default_factory=dict)
    eviction: EvictionConfig = field(default_factory=config_from_flags)  # kubelet's --eviction-* flags
    pod_max_pids: int = -1  # kubelet's --pod-max-pids
    container_gc_period: float = CONTAINER_GC_PERIOD  # k8py's --container-gc-period (kubelet: fixed at 1m)


def node_paths(data_dir: str) -> dict[str, str]:
    agent = os.path.join(data_dir, "agent")
    return {"agent": agent, "containers": os.path.join(agent, "containers"), "cni": os.path.join(agent, "cni"),
            "images": store_dir(data_dir), "airgap": airgap_dir(data_dir)}


class NodeNetwork:
    """The :class:`~k8py.kubelet.runtime.types.PodNetwork` of this node: a :class:`CNINetwork`
    made once the node has its pod CIDRs."""

    def __init__(self, state_dir: str, *, cluster_cidrs: Sequence[str] = (), bridge: str = "k8py0") -> None:
        self.state_dir = state_dir
        self.cluster_cidrs = tuple(cluster_cidrs)
        self.bridge = bridge
        self.cni: CNINetwork | None = None
        self._ready = asyncio.Event()
        self._applied: tuple[CNINetwork, dict[str, str]] | None = None  # the routes last set

    def set_pod_cidrs(self, cidrs: Sequence[str]) -> None:
        if not cidrs or (self.cni is not None and tuple(cidrs) == self.cni.pod_cidrs):
            return
        if self.cni is not None:
            log.warning("the node's pod CIDRs changed from %s to %s", ",".join(self.cni.pod_cidrs), ",".join(cidrs))
        self.cni = CNINetwork(pod_cidrs=cidrs, state_dir=self.state_dir, bridge=self.bridge,
                              cluster_cidrs=self.cluster_cidrs)
        log.info("pod network ready: %s on bridge %s", ",".join(cidrs), self.bridge)
        self._ready.set()

    async def create(self, sandbox_id: str, config: SandboxConfig) -> tuple[str, tuple[str, ...]]:
        if config.host_network:
            return "", ()
        try:
            async with asyncio.timeout(NETWORK_WAIT):
                await self._ready.wait()
        except TimeoutError:
            raise SandboxError("network is not ready: the node has no pod CIDR yet (node IPAM in the "
                               "controller manager assigns one; is it running with --cluster-cidr?)") from None
        assert self.cni is not None
        return await self.cni.create(sandbox_id, config)

    async def destroy(self, sandbox_id: str, netns_path: str, config: SandboxConfig) -> None:
        if self.cni is not None:
            await self.cni.destroy(sandbox_id, netns_path, config)
        elif netns_path:
            # no pod CIDR known (yet) in this run: the saved record still tears it down
            await saved_network(self.state_dir, self.bridge).destroy(sandbox_id, netns_path, config)

    async def sync(self, nodes: Sequence[Mapping[str, Any]], me: str) -> None:
        """The pod CIDRs of this node, and a route to every other node's pod CIDRs via its
        InternalIP (host-gw)."""
        peers: dict[str, str] = {}
        for n in nodes:
            name = (n.get("metadata") or {}).get("name")
            spec = n.get("spec") or {}
            cidrs = list(spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else []))
            if name == me:
                self.set_pod_cidrs(cidrs)
                continue
            addrs = [a.get("address", "") for a in (n.get("status") or {}).get("addresses") or ()
                     if a.get("type") == "InternalIP"]
            for cidr in cidrs:
                v6 = ":" in cidr
                via = next((a for a in addrs if (":" in a) == v6), None)
                if via:
                    peers[cidr] = via
        # every node's status update lands here (each node, every 10 s): change routes only
        # when the peers did
        if self.cni is not None and (self.cni, peers) != self._applied:
            try:
                await self.cni.sync_routes(peers)
                self._applied = (self.cni, peers)
            except Exception as e:  # noqa: BLE001 - routes are retried on the next node change
                log.warning("routes to other nodes' pods: %s", e)


def saved_network(state_dir: str, bridge: str = "k8py0") -> CNINetwork:
    """The node's network as its saved records know it, for work that needs no pod CIDR: DEL
    and teardown (each sandbox's record holds the configuration that made it), the check for
    missing plugins. The CIDR given is a placeholder that nothing is allocated from."""
    return CNINetwork(pod_cidrs=["10.255.255.0/30"], state_dir=state_dir, bridge=bridge)


def missing_prerequisites(data_dir: str) -> list[str]:
    """What this machine lacks to run pods (runc, conmon, the CNI plugins, root ...), each with
    how to get it; empty when the node can run."""
    paths = node_paths(data_dir)
    out: list[str] = []
    if os.geteuid() != 0:
        return [("root: the node agent makes namespaces, mounts and cgroups; run k8py as root "
                "(or pass --disable-agent to run the control plane only)")]
    out += saved_network(paths["cni"]).missing()
    rt = RuncRuntime(paths["containers"], ImageStore(paths["images"]), NodeNetwork(paths["cni"]))
    out += [m for m in rt.missing() if not m.startswith("root")]
    for tool, pkg in (("skopeo", "skopeo"), ("umoci", "umoci")):
        if not any(os.access(os.path.join(d, tool), os.X_OK) for d in os.environ.get("PATH", "").split(":") + [
                "/usr/bin", "/usr/sbin"]):
            out.append(f"{tool}: apt-get install {pkg}")
    return out


async def run_node(client: Client, opts: NodeOptions, stop: asyncio.Event, *,
                   ready: asyncio.Event | None = None) -> None:
    """Run this node until ``stop``: containers keep running afterwards (a restart finds them)."""
    paths = node_paths(opts.data_dir)
    for d in paths.values():
        os.makedirs(d, 0o755, exist_ok=True)
    # The runtime's blocking steps (runc, conmon's start, CNI state, mounts) run in threads, many
    # of them waiting on a child process: asyncio's default pool (cores + 4 threads) made pods
    # started together wait in line for a thread.
    asyncio.get_running_loop().set_default_executor(
        concurrent.futures.ThreadPoolExecutor(max_workers=IO_THREADS, thread_name_prefix="k8py-node"))
    network = NodeNetwork(paths["cni"], cluster_cidrs=opts.cluster_cidrs, bridge=opts.bridge)
    runtime: RuncRuntime

    async def images_in_use() -> set[str]:
        return {c.image_ref for c in await runtime.list_containers()}

    images = ImageStore(paths["images"], in_use=images_in_use)
    runtime = RuncRuntime(paths["containers"], images, network, pod_pids_limit=opts.pod_max_pids)
    # start-up cleanup: network namespaces of sandboxes the runtime no longer has (a crash
    # half-way through a sandbox), before any pod worker makes new ones
    keep = {sb.id for sb in await runtime.list_pod_sandboxes()}
    removed = await saved_network(paths["cni"], opts.bridge).remove_leftovers(keep)
    if removed:
        log.info("removed the pod network of %d sandbox(es) left from an earlier run", len(removed))
    try:
        imported = await images.import_dir(paths["airgap"])
        if imported:
            log.info("imported %d image(s) from %s", len(imported), paths["airgap"])
    except Exception as e:  # noqa: BLE001 - a bad archive must not keep the node down
        log.warning("importing images from %s: %s", paths["airgap"], e)
    agent = Agent(client, runtime, AgentConfig(
        node_name=opts.node_name, data_dir=paths["agent"], node_ips=opts.node_ips, max_pods=opts.max_pods,
        system_reserved=opts.system_reserved, kube_reserved=opts.kube_reserved, labels=opts.labels,
        kubelet_port=opts.kubelet_port,
        cluster_dns=opts.cluster_dns, eviction=opts.eviction, read_pods_cgroup=True,
        container_gc_period=opts.container_gc_period,
        image_dirs=(paths["images"], paths["containers"])))
    nodes = Informer(client, NODE)

    async def on_nodes() -> None:
        await network.sync(nodes.list(), opts.node_name)

    def changed(*_: Any) -> None:
        asyncio.ensure_future(on_nodes())

    nodes.add_handler(changed, changed, changed)
    server = None
    if opts.serving_cert:
        server = KubeletServer(runtime, lambda: [w.pod for w in agent.workers.values()], node_name=opts.node_name,
                               host=opts.kubelet_bind, port=opts.kubelet_port, cert_file=opts.serving_cert,
                               key_file=opts.serving_key, client_ca_file=opts.client_ca,
                               volume_stats=agent.volumes.stats)
        await server.start()
    node_task = nodes.start()
    gc_task = asyncio.create_task(_image_gc(images, images_in_use), name="image-gc")
    try:
        await agent.start()
        await nodes.wait_for_sync()
        if ready is not None:
            ready.set()
        await stop.wait()
    finally:
        gc_task.cancel()
        await agent.stop()
        await nodes.stop()
        node_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await node_task
        if server is not None:
            await server.stop()
        await runtime.close()


IMAGE_GC_PERIOD = 300.0  # kubelet's ImageGCPeriod
IMAGE_GC_HIGH, IMAGE_GC_LOW = 85, 80  # kubelet's image GC thresholds (percent of the disk used)


async def _image_gc(images: ImageStore, in_use: Any) -> None:
    """kubelet's image garbage collection: above 85 % of the disk used, unused images go,
    least recently used first, until 80 %."""
    while True:
        await asyncio.sleep(IMAGE_GC_PERIOD)
        try:
            freed = await images.gc(await in_use(), IMAGE_GC_HIGH, IMAGE_GC_LOW)
            if freed:
                log.info("image garbage collection freed %d bytes", freed)
        except Exception as e:  # noqa: BLE001 - try again next period
            log.warning("image garbage collection: %s", e)


async def teardown(data_dir: str, bridge: str = "k8py0") -> list[str]:
    """``k8py killall``: every container and sandbox of this node stopped and removed, the
    node's network set-up (bridge, routes, nft table) and the pods' volumes removed. Returns the
    problems met."""
    paths = node_paths(data_dir)
    problems: list[str] = []
    network = NodeNetwork(paths["cni"], bridge=bridge)
    if os.path.isdir(paths["containers"]):
        runtime = RuncRuntime(paths["containers"], ImageStore(paths["images"]), network)
        try:
            await runtime.cleanup_all()
        except Exception as e:  # noqa: BLE001 - report, go on with the network
            problems.append(f"containers: {e}")
    try:
        await saved_network(paths["cni"], bridge).teardown_node()
    except Exception as e:  # noqa: BLE001 - report
        problems.append(f"network: {e}")
    # the pods' volumes: tmpfs and subPath mounts unmounted, their directories removed
    problems += [f"volumes: {p}" for p in await asyncio.to_thread(teardown_dir, os.path.join(paths["agent"], "pods"))]
    return problems
