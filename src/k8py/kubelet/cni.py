"""Pod networking with the reference CNI plugins (Debian's ``containernetworking-plugins`` in
``/usr/lib/cni``): the runc runtime's :class:`~k8py.kubelet.runtime.types.PodNetwork`.

What a sandbox gets
    A network namespace ``/run/netns/k8py-<first 12 of the sandbox id>`` (made with ``ip netns
    add``, so ``ip netns exec k8py-... sh`` works for debugging), ``lo`` brought up by the
    ``loopback`` plugin (its own one-plugin invocation, as containerd and CRI-O do), then one
    conflist run in order, as libcni runs it:

    * ``bridge``: a veth from the namespace's ``eth0`` to the node's bridge (``k8py0``), which is
      the pods' gateway (``isGateway``, ``hairpinMode``); addresses from ``host-local`` IPAM,
      one range per pod CIDR (an IPv4 and an IPv6 CIDR give a dual-stack pod), a default route
      per family, the store under ``<state_dir>/ipam/<network name>/``.
    * ``portmap``: the pod's ``hostPort``\\ s (``capabilities.portMappings``; the mappings are
      passed as ``runtimeConfig``). portmap DNATs ``PREROUTING`` and ``OUTPUT`` traffic to any
      local address, and sets ``route_localnet`` on the bridge, so ``127.0.0.1:<hostPort>``
      reaches the pod from the node itself (IPv4 only: the kernel never routes ``::1``); the
      bridge's gateway address and the node's own addresses work for both families.

    The plugin sequence speaks CNI 1.0.0 when ``bridge`` lists it under ``CNI_COMMAND=VERSION``,
    else 0.4.0 (the oldest version with ``prevResult`` on DEL).

State (``<state_dir>/sandboxes/<sandbox id>.json``)
    Written *before* the namespace is made and updated with the ADD result, replaced atomically
    (a temporary file and ``rename``), one file per sandbox, so concurrent creates never share a
    file. DEL runs the saved conflist, ``runtimeConfig`` and result (libcni's result cache), so a
    pod is torn down exactly as it was set up even after the agent restarted with another pod
    CIDR. host-local's store has its own file lock.

Masquerade (why the bridge's ``ipMasq`` stays off)
    The bridge plugin's ``ipMasq`` adds, per pod, an iptables chain that accepts traffic to the
    pod's own subnet and masquerades everything else, so a pod talking to a pod on another node
    (another pod CIDR of the cluster) would arrive there with the node's address. An exception
    cannot be added from a table of ours: in nftables an ``accept`` ends only its own base chain,
    the ``ip nat`` table of iptables-nft still runs, and the only way to pre-empt its MASQUERADE
    (a NAT binding made first, an identity SNAT) would also pre-empt every other component's
    masquerade (the service proxy's hairpin, portmap's). So with ``masquerade=True`` this module
    owns one table, ``inet k8py-cni`` (``k8py-cni-<bridge>`` for a bridge other than ``k8py0``),
    replaced atomically with ``nft -f``, whose one rule masquerades traffic from the pod CIDRs
    to anything outside the pod and cluster CIDRs (and not to multicast, as ipMasq does).

Pod-to-pod across nodes (flannel's host-gw)
    :meth:`CNINetwork.sync_routes` keeps one route ``<peer pod CIDR> via <peer node IP>`` per
    other node. They carry routing protocol :data:`ROUTE_PROTO` and are listed in
    ``<state_dir>/routes.json``; a route is removed only when it is in that list *and* still has
    our protocol, so routes anyone else made are never touched.

Every plugin, ``ip``, ``nft`` and ``iptables`` call is an asyncio subprocess, and small state
files are written in a worker thread: nothing blocks the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import re
import shlex
import shutil
import tempfile
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from typing import Any

from . import proc
from .runtime.types import PortMapping, RuntimeServiceError, SandboxConfig, SandboxError

__all__ = [
    "DEFAULT_BRIDGE",
    "NETNS_DIR",
    "NETNS_PREFIX",
    "REQUIRED_PLUGINS",
    "ROUTE_PROTO",
    "CNINetwork",
    "NodeNetworkError",
    "netns_name",
]

log = logging.getLogger(__name__)

NETNS_DIR = "/run/netns"  # where ``ip netns`` keeps its bind-mounted namespaces
NETNS_PREFIX = "k8py-"
DEFAULT_BRIDGE = "k8py0"
ROUTE_PROTO = 0x4B  # "K": the routing protocol number on the routes sync_routes makes
REQUIRED_PLUGINS = ("bridge", "host-local", "portmap", "loopback")
IFNAME = "eth0"
PLUGIN_TIMEOUT = 120.0  # seconds a plugin may take before it is killed
_TOOL_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # plugins run iptables
_HOSTPORT_DNAT = "CNI-HOSTPORT-DNAT"  # portmap's shared chains (nat table)
_HOSTPORT_SHARED = ("CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-SETMARK", "CNI-HOSTPORT-MASQ")
_SANDBOX_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class NodeNetworkError(RuntimeServiceError):
    """A node-level network operation (routes, teardown) failed."""


def netns_name(sandbox_id: str) -> str:
    """The namespace's name under ``/run/netns`` for a sandbox."""
    return NETNS_PREFIX + sandbox_id[:12]


class _ToolError(Exception):
    def __init__(self, argv: Sequence[str], rc: int, stderr: str) -> None:
        super().__init__(f"{shlex.join(argv)}: exit {rc}: {stderr.strip()}")
        self.stderr = stderr


async def _run(*argv: str, check: bool = True, stdin: bytes | None = None) -> tuple[int, str, str]:
    """Runs a tool (``ip``, ``nft``, ``iptables``) and returns (rc, stdout, stderr)."""
    r = await proc.run(argv, input=stdin)
    out, err = r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")
    if check and r.returncode != 0:
        raise _ToolError(argv, r.returncode, err)
    return r.returncode, out, err


def _write_json_atomic(path: str, data: Any) -> None:
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _read_json(path: str) -> Any:
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _parse_cidrs(cidrs: Sequence[str], what: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    if isinstance(cidrs, str):
        raise TypeError(f"{what} must be a list of CIDRs, not the string {cidrs!r}")
    nets = []
    for c in cidrs:
        try:
            nets.append(ipaddress.ip_network(c.strip(), strict=False))
        except ValueError as e:
            raise ValueError(
                f"{what}: {c!r} is not a CIDR (like 10.244.1.0/24 or fd00:10:244:1::/64): {e}"
            ) from e
    return nets


def _collapse(nets: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> list[str]:
    """The CIDRs merged (nft refuses overlapping intervals in one set), IPv4 then IPv6."""
    v4 = [n for n in nets if isinstance(n, ipaddress.IPv4Network)]
    v6 = [n for n in nets if isinstance(n, ipaddress.IPv6Network)]
    return [str(n) for n in ipaddress.collapse_addresses(v4)] + [
        str(n) for n in ipaddress.collapse_addresses(v6)
    ]


def _sort_ips(ips: Sequence[str]) -> tuple[str, ...]:
    """IPv4 first, otherwise in the plugin's order."""
    return tuple(sorted(ips, key=lambda ip: ipaddress.ip_address(ip).version))


class CNINetwork:
    """A bridge pod network run by the CNI plugins; see the module docstring."""

    def __init__(
        self,
        *,
        pod_cidrs: Sequence[str],
        state_dir: str,
        bridge: str = DEFAULT_BRIDGE,
        plugin_dir: str = "/usr/lib/cni",
        mtu: int = 1500,
        masquerade: bool = True,
        cluster_cidrs: Sequence[str] = (),
    ) -> None:
        nets = _parse_cidrs(pod_cidrs, "pod CIDRs")
        if not nets:
            raise ValueError("pod CIDRs: at least one pod CIDR is needed (the node's spec.podCIDRs)")
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,15}", bridge):
            raise ValueError(f"bridge: {bridge!r} is not a valid interface name (1-15 of A-Z a-z 0-9 _ . -)")
        if not 68 <= mtu <= 65535:
            raise ValueError(f"mtu: {mtu} is out of range (68-65535)")
        if not state_dir:
            raise ValueError("state_dir: a directory for the network's state is needed")
        self.pod_cidrs: tuple[str, ...] = tuple(str(n) for n in nets)
        self.cluster_cidrs: tuple[str, ...] = tuple(
            str(n) for n in _parse_cidrs(cluster_cidrs, "cluster CIDRs")
        )
        self.state_dir = os.path.abspath(state_dir)
        self.bridge = bridge
        self.plugin_dir = plugin_dir
        self.mtu = mtu
        self.masquerade = masquerade
        self.network_name = f"k8py-{bridge}"  # the CNI network name: host-local's store, chain hashes
        self.nft_table = "k8py-cni" if bridge == DEFAULT_BRIDGE else f"k8py-cni-{bridge}"
        self._nets = nets
        self._version: str | None = None
        self._masq_ready = False
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}  # sandbox id -> (lock, users)
        self._setup_lock = asyncio.Lock()
        self._routes_lock = asyncio.Lock()
        # Why: portmap's go-iptables checks for its shared chains and then creates them; two
        # pods with hostPorts set up at once can race on that, so portmap runs one at a time.
        self._portmap_lock = asyncio.Lock()

    # ------------------------------------------------------------------ paths and state

    @property
    def ipam_dir(self) -> str:
        return os.path.join(self.state_dir, "ipam")

    def _sandbox_file(self, sandbox_id: str) -> str:
        return os.path.join(self.state_dir, "sandboxes", sandbox_id + ".json")

    def _routes_file(self) -> str:
        return os.path.join(self.state_dir, "routes.json")

    @contextlib.asynccontextmanager
    async def _lock(self, sandbox_id: str) -> AsyncIterator[None]:
        """One setup or teardown per sandbox at a time; the lock lives while someone holds or
        waits for it, so the map does not grow with every pod the node ever ran."""
        lock, users = self._locks.get(sandbox_id, (asyncio.Lock(), 0))
        self._locks[sandbox_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[sandbox_id]
            if users == 1:
                del self._locks[sandbox_id]
            else:
                self._locks[sandbox_id] = (lock, users - 1)

    def _records(self) -> list[dict[str, Any]]:
        d = os.path.join(self.state_dir, "sandboxes")
        try:
            names = sorted(os.listdir(d))
        except FileNotFoundError:
            return []
        out = []
        for n in names:
            if n.endswith(".json") and not n.startswith("."):
                rec = _read_json(os.path.join(d, n))
                if isinstance(rec, dict) and rec.get("sandbox_id") == n[: -len(".json")]:
                    out.append(rec)
        return out

    # ------------------------------------------------------------------ checks

    def missing(self) -> list[str]:
        """What this network needs and the node lacks, each with how to get it."""
        out = []
        for p in REQUIRED_PLUGINS:
            path = os.path.join(self.plugin_dir, p)
            if not os.access(path, os.X_OK):
                out.append(
                    f"CNI plugin {p!r} ({path}): apt-get install containernetworking-plugins "
                    "(or pass the directory that holds the plugins)"
                )
        tools = {"ip": "iproute2", "iptables": "iptables", "nft": "nftables"}
        if any(n.version == 6 for n in self._nets):
            tools["ip6tables"] = "iptables"
        for tool, pkg in tools.items():
            if shutil.which(tool, path=_TOOL_PATH) is None:
                out.append(f"{tool}: apt-get install {pkg}")
        return out

    # ------------------------------------------------------------------ config

    async def cni_version(self) -> str:
        """1.0.0 when the installed ``bridge`` supports it, else 0.4.0."""
        if self._version is None:
            res = await self._exec_plugin(
                "bridge", "VERSION", {"cniVersion": "1.0.0"}, env={}, what="version"
            )
            supported = (res.get("supportedVersions") or []) if isinstance(res, dict) else []
            if "1.0.0" in supported:
                self._version = "1.0.0"
            elif "0.4.0" in supported:
                self._version = "0.4.0"
            else:
                raise SandboxError(
                    f"the CNI plugins in {self.plugin_dir} support versions {supported}, "
                    "k8py needs 0.4.0 or 1.0.0: apt-get install containernetworking-plugins"
                )
        return self._version

    def conflist(self, version: str, portmap: bool = True) -> dict[str, Any]:
        """The network configuration list (as a ``.conflist`` file would hold it). Without host
        ports the portmap plugin is left out: one process less per pod, and DEL uses the list
        the sandbox was made with (saved with it)."""
        routes = []
        if any(n.version == 4 for n in self._nets):
            routes.append({"dst": "0.0.0.0/0"})
        if any(n.version == 6 for n in self._nets):
            routes.append({"dst": "::/0"})
        return {
            "cniVersion": version,
            "name": self.network_name,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": self.bridge,
                    "isGateway": True,
                    "ipMasq": False,  # k8py-cni's table does it, with the cluster's exceptions
                    "hairpinMode": True,
                    "mtu": self.mtu,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": c}] for c in self.pod_cidrs],
                        "routes": routes,
                        "dataDir": self.ipam_dir,
                    },
                },
                *([{"type": "portmap", "capabilities": {"portMappings": True}, "snat": True}] if portmap else []),
            ],
        }

    @staticmethod
    def _port_mappings(mappings: Sequence[PortMapping]) -> list[dict[str, Any]]:
        out = []
        for m in mappings:
            if m.host_port == 0:  # a containerPort without hostPort: nothing to map
                continue
            proto = (m.protocol or "TCP").upper()
            if proto not in ("TCP", "UDP", "SCTP"):
                raise SandboxError(
                    f"port mapping {m.host_port}->{m.container_port}: unknown protocol {m.protocol!r}"
                )
            for port, what in ((m.host_port, "hostPort"), (m.container_port, "containerPort")):
                if not 1 <= port <= 65535:
                    raise SandboxError(f"port mapping: {what} {port} is out of range (1-65535)")
            out.append(
                {
                    "hostPort": m.host_port,
                    "containerPort": m.container_port,
                    "protocol": proto.lower(),
                    "hostIP": m.host_ip,
                }
            )
        return out

    @staticmethod
    def _cni_args(sandbox_id: str, config: SandboxConfig) -> str:
        pairs = [
            ("IgnoreUnknown", "1"),
            ("K8S_POD_NAMESPACE", config.namespace),
            ("K8S_POD_NAME", config.name),
            ("K8S_POD_INFRA_CONTAINER_ID", sandbox_id),
            ("K8S_POD_UID", config.uid),
        ]
        for k, v in pairs:
            if ";" in v or "=" in v:
                raise SandboxError(f"CNI_ARGS: {k} {v!r} may not contain ';' or '='")
        return ";".join(f"{k}={v}" for k, v in pairs)

    # ------------------------------------------------------------------ plugins

    async def _exec_plugin(
        self, plugin: str, command: str, conf: Mapping[str, Any], *, env: Mapping[str, str], what: str
    ) -> Any:
        """Runs one plugin; returns its parsed stdout (None when empty). A failure raises
        :class:`SandboxError` carrying the plugin's own message."""
        path = os.path.join(self.plugin_dir, plugin)
        if not os.access(path, os.X_OK):
            raise SandboxError(
                f'failed to find plugin "{plugin}" in path [{self.plugin_dir}] '
                "(apt-get install containernetworking-plugins)"
            )
        full_env = {"PATH": _TOOL_PATH, "CNI_COMMAND": command, "CNI_PATH": self.plugin_dir, **env}
        try:
            r = await proc.run([path], input=json.dumps(conf).encode(), env=full_env, timeout=PLUGIN_TIMEOUT)
            out, err, returncode = r.stdout, r.stderr, r.returncode
        except TimeoutError:
            raise SandboxError(
                f'plugin type="{plugin}" name="{conf.get("name", "")}" failed ({what}): '
                f"no answer in {PLUGIN_TIMEOUT:.0f}s"
            ) from None
        except OSError as e:
            raise SandboxError(f'plugin type="{plugin}" failed ({what}): cannot run {path}: {e}') from e
        text = out.decode(errors="replace").strip()
        parsed: Any = None
        if text:
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = None
        if returncode != 0:
            if isinstance(parsed, dict) and "msg" in parsed:
                msg = str(parsed["msg"])
                if parsed.get("details"):
                    msg += f": {parsed['details']}"
            else:
                msg = err.decode(errors="replace").strip() or text or f"exit status {returncode}"
            raise SandboxError(f'plugin type="{plugin}" name="{conf.get("name", "")}" failed ({what}): {msg}')
        if text and parsed is None:
            raise SandboxError(
                f'plugin type="{plugin}" failed ({what}): its output is not JSON: {text[:200]}'
            )
        return parsed

    def _plugin_conf(
        self, net: Mapping[str, Any], plugin: Mapping[str, Any], runtime: Mapping[str, Any], prev: Any
    ) -> dict[str, Any]:
        # As libcni builds each plugin's stdin from a conflist: the list's name and version, the
        # runtimeConfig of the capabilities the plugin declares, and the previous result.
        conf = dict(plugin)
        conf["name"] = net["name"]
        conf["cniVersion"] = net["cniVersion"]
        caps = plugin.get("capabilities") or {}
        rc = {k: v for k, v in runtime.items() if caps.get(k) and v}
        if rc:
            conf["runtimeConfig"] = rc
        if prev is not None:
            conf["prevResult"] = prev
        return conf

    def _env(self, sandbox_id: str, netns: str, cni_args: str, ifname: str = IFNAME) -> dict[str, str]:
        return {"CNI_CONTAINERID": sandbox_id, "CNI_NETNS": netns, "CNI_IFNAME": ifname, "CNI_ARGS": cni_args}

    async def _add(self, rec: Mapping[str, Any]) -> Any:
        net = rec["network"]
        env = self._env(rec["sandbox_id"], rec["netns"], rec["cni_args"])
        lo = {"cniVersion": net["cniVersion"], "name": "cni-loopback", "type": "loopback"}
        await self._exec_plugin("loopback", "ADD", lo, env={**env, "CNI_IFNAME": "lo"}, what="add")
        prev: Any = None
        for plugin in net["plugins"]:
            conf = self._plugin_conf(net, plugin, rec["runtime_config"], prev)
            if plugin["type"] == "portmap":
                async with self._portmap_lock:
                    prev = await self._exec_plugin(plugin["type"], "ADD", conf, env=env, what="add")
            else:
                prev = await self._exec_plugin(plugin["type"], "ADD", conf, env=env, what="add")
        return prev

    async def _del(self, rec: Mapping[str, Any], netns: str) -> None:
        """DEL of every plugin in reverse order; all run even if one fails, the first error raises."""
        net = rec["network"]
        env = self._env(rec["sandbox_id"], netns, rec["cni_args"])
        first: SandboxError | None = None
        for plugin in reversed(net["plugins"]):
            conf = self._plugin_conf(net, plugin, rec["runtime_config"], rec.get("result"))
            try:
                if plugin["type"] == "portmap":
                    async with self._portmap_lock:
                        await self._exec_plugin(plugin["type"], "DEL", conf, env=env, what="delete")
                else:
                    await self._exec_plugin(plugin["type"], "DEL", conf, env=env, what="delete")
            except SandboxError as e:
                first = first or e
        if first is not None:
            raise first

    # ------------------------------------------------------------------ namespaces

    @staticmethod
    async def _netns_add(name: str) -> None:
        await _run("ip", "netns", "add", name)

    @staticmethod
    async def _netns_delete(path: str) -> None:
        """Deletes a namespace this module named (``/run/netns/k8py-*``); anything else is left."""
        if os.path.dirname(path) != NETNS_DIR or not os.path.basename(path).startswith(NETNS_PREFIX):
            return
        if not os.path.lexists(path):
            return
        rc, _, err = await _run("ip", "netns", "delete", os.path.basename(path), check=False)
        if rc != 0 and os.path.lexists(path):
            raise SandboxError(f"cannot delete network namespace {path}: {err.strip()}")

    def list_netns(self) -> list[str]:
        """The namespaces (names under ``/run/netns``) this network made and has not removed:
        ``k8py-*`` ones that a sandbox record of this state dir names. Another k8py network on
        the node (another state dir) keeps its own."""
        try:
            present = set(os.listdir(NETNS_DIR))
        except FileNotFoundError:
            return []
        ours = {os.path.basename(str(r.get("netns", ""))) for r in self._records()}
        return sorted(n for n in present if n.startswith(NETNS_PREFIX) and n in ours)

    # ------------------------------------------------------------------ the PodNetwork

    async def create(self, sandbox_id: str, config: SandboxConfig) -> tuple[str, tuple[str, ...]]:
        if config.host_network:
            return "", ()
        if not _SANDBOX_ID.match(sandbox_id):
            raise SandboxError(f"sandbox id {sandbox_id!r} is not valid (letters, digits, '_.-')")
        async with self._lock(sandbox_id):
            version = await self.cni_version()
            await self._ensure_masquerade()
            name = netns_name(sandbox_id)
            rec: dict[str, Any] = {
                "sandbox_id": sandbox_id,
                "netns": os.path.join(NETNS_DIR, name),
                "network": self.conflist(version, portmap=bool(config.port_mappings)),
                "runtime_config": {"portMappings": self._port_mappings(config.port_mappings)},
                "cni_args": self._cni_args(sandbox_id, config),
                "result": None,
            }
            old = await asyncio.to_thread(_read_json, self._sandbox_file(sandbox_id))
            if old is not None or os.path.lexists(rec["netns"]):
                # A leftover of an earlier attempt (the agent died half-way): undo it first.
                log.info("sandbox %s: removing the network left from an earlier attempt", sandbox_id)
                await self._teardown(old if isinstance(old, dict) else rec, rec["netns"])
            # Why: the record is on disk before anything exists, so whatever a crash leaves
            # behind is found (list_netns) and undone with the configuration that made it.
            await asyncio.to_thread(_write_json_atomic, self._sandbox_file(sandbox_id), rec)
            try:
                await self._netns_add(name)
                result = await self._add(rec)
                rec["result"] = result
                await asyncio.to_thread(_write_json_atomic, self._sandbox_file(sandbox_id), rec)
                ips = self._result_ips(result)
            except BaseException as e:
                try:
                    await self._teardown(rec, rec["netns"])
                except Exception as ce:  # noqa: BLE001 - the original failure is what the caller needs
                    # DEL refused the configuration that ADD refused (an invalid pod CIDR): it
                    # cannot ever succeed, so the record goes rather than block teardown forever.
                    log.warning("sandbox %s: cleanup after a failed network setup: %s", sandbox_id, ce)
                    await asyncio.to_thread(_unlink, self._sandbox_file(sandbox_id))
                if isinstance(e, _ToolError):
                    raise SandboxError(f'failed to set up network for sandbox "{sandbox_id}": {e}') from e
                if isinstance(e, SandboxError):
                    raise SandboxError(f'failed to set up network for sandbox "{sandbox_id}": {e}') from e
                raise
            return rec["netns"], ips

    @staticmethod
    def _result_ips(result: Any) -> tuple[str, ...]:
        ips = []
        for entry in (result or {}).get("ips") or []:
            addr = str(entry.get("address", ""))
            if addr:
                ips.append(addr.split("/", 1)[0])
        if not ips:
            raise SandboxError(f"the CNI result has no pod addresses: {json.dumps(result)[:300]}")
        return _sort_ips(ips)

    async def destroy(self, sandbox_id: str, netns_path: str, config: SandboxConfig) -> None:
        if not _SANDBOX_ID.match(sandbox_id):
            raise SandboxError(f"sandbox id {sandbox_id!r} is not valid (letters, digits, '_.-')")
        async with self._lock(sandbox_id):
            rec = await asyncio.to_thread(_read_json, self._sandbox_file(sandbox_id))
            if not isinstance(rec, dict):
                if config.host_network:
                    return
                # No record: torn down already, or never set up here. DEL is idempotent, so the
                # current configuration releases whatever might still hold this sandbox's id.
                rec = {
                    "sandbox_id": sandbox_id,
                    "netns": os.path.join(NETNS_DIR, netns_name(sandbox_id)),
                    "network": self.conflist(await self.cni_version()),
                    "runtime_config": {"portMappings": self._port_mappings(config.port_mappings)},
                    "cni_args": self._cni_args(sandbox_id, config),
                    "result": None,
                }
            try:
                await self._teardown(rec, netns_path or rec["netns"])
            except (SandboxError, _ToolError) as e:
                raise SandboxError(f'failed to tear down network of sandbox "{sandbox_id}": {e}') from e

    async def _teardown(self, rec: Mapping[str, Any], netns_path: str) -> None:
        paths = {p for p in (netns_path, rec.get("netns", "")) if p}
        present = next((p for p in sorted(paths) if os.path.lexists(p)), "")
        # Why: with the namespace gone the plugins skip their in-namespace work and only
        # release addresses and rules, which is what DEL of something half-gone needs.
        failed: SandboxError | None = None
        try:
            await self._del(rec, present)
        except SandboxError as e:
            failed = e
        # The namespace goes even if DEL failed (its veth goes with it); the record stays then,
        # so a later destroy or teardown_node runs DEL again (with CNI_NETNS="").
        for p in paths:
            await self._netns_delete(p)
        if failed is not None:
            raise failed
        await asyncio.to_thread(_unlink, self._sandbox_file(rec["sandbox_id"]))

    async def remove_leftovers(self, keep: Collection[str]) -> list[str]:
        """Tears down every sandbox this network set up whose id is not in ``keep`` (the
        agent's start-up cleanup); returns the ids it removed."""
        removed = []
        for rec in await asyncio.to_thread(self._records):
            sid = rec["sandbox_id"]
            if sid in keep:
                continue
            async with self._lock(sid):
                await self._teardown(rec, rec.get("netns", ""))
            removed.append(sid)
        return removed

    # ------------------------------------------------------------------ masquerade

    def masquerade_ruleset(self) -> str:
        """The ``nft -f`` input that (re)creates this network's table in one transaction."""
        t = self.nft_table
        lines = [f"table inet {t} {{}}", f"delete table inet {t}", f"table inet {t} {{"]
        lines.append("  chain postrouting {")
        lines.append("    type nat hook postrouting priority srcnat; policy accept;")
        for version, fam, mcast in ((4, "ip", "224.0.0.0/4"), (6, "ip6", "ff00::/8")):
            pods = [n for n in self._nets if n.version == version]
            if not pods:
                continue
            src = ", ".join(_collapse(pods))
            dst = ", ".join([*_collapse([*pods, *self._cluster(version)]), mcast])
            lines.append(f"    {fam} saddr {{ {src} }} {fam} daddr != {{ {dst} }} masquerade")
        lines += ["  }", "}", ""]
        return "\n".join(lines)

    def _cluster(self, version: int) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [n for n in _parse_cidrs(self.cluster_cidrs, "cluster CIDRs") if n.version == version]

    async def setup_node(self) -> None:
        """(Re)creates this network's masquerade table in one ``nft -f`` transaction (nothing
        when ``masquerade`` is off). :meth:`create` does it once per instance; the agent may call
        it again at any time (say, after someone flushed the ruleset)."""
        if not self.masquerade:
            return
        async with self._setup_lock:
            try:
                await _run("nft", "-f", "-", stdin=self.masquerade_ruleset().encode())
            except (_ToolError, OSError) as e:
                raise SandboxError(
                    f"cannot set up the pods' masquerade (table inet {self.nft_table}): {e}"
                ) from e
            self._masq_ready = True

    async def _ensure_masquerade(self) -> None:
        if self.masquerade and not self._masq_ready:
            await self.setup_node()

    # ------------------------------------------------------------------ routes

    async def sync_routes(self, peers: Mapping[str, str]) -> None:
        """Makes the routes to other nodes' pods exactly ``peers`` (pod CIDR -> node IP): adds
        or replaces each, removes the ones this network added before that are not wanted now.
        Our own pod CIDRs in ``peers`` are skipped (the bridge serves them)."""
        wanted: dict[str, str] = {}
        own = set(self.pod_cidrs)
        for cidr, node_ip in peers.items():
            net = _parse_cidrs([cidr], "peer pod CIDR")[0]
            try:
                gw_ip = ipaddress.ip_address(node_ip.strip())
            except ValueError as e:
                raise ValueError(f"peer node IP for {cidr}: {node_ip!r} is not an IP address") from e
            if gw_ip.version != net.version:
                raise ValueError(
                    f"peer {cidr} via {node_ip}: the pod CIDR and the node IP are of different families"
                )
            if str(net) not in own:
                wanted[str(net)] = str(gw_ip)
        async with self._routes_lock:
            owned = set(await asyncio.to_thread(_read_json, self._routes_file()) or [])
            # Why: recorded before they exist, so a crash between never orphans a route.
            await asyncio.to_thread(_write_json_atomic, self._routes_file(), sorted(owned | set(wanted)))
            errors = []
            for cidr, gw in sorted(wanted.items()):
                fam = "-6" if ":" in cidr else "-4"
                try:
                    await _run("ip", fam, "route", "replace", cidr, "via", gw, "proto", str(ROUTE_PROTO))
                except _ToolError as e:
                    errors.append(str(e))
            for cidr in sorted(owned - set(wanted)):
                await self._route_del(cidr)
            await asyncio.to_thread(_write_json_atomic, self._routes_file(), sorted(wanted))
            if errors:
                raise NodeNetworkError("cannot add routes to other nodes' pods: " + "; ".join(errors))

    @staticmethod
    async def _route_del(cidr: str) -> None:
        # "proto" makes the kernel delete the route only if it still carries our protocol.
        fam = "-6" if ":" in cidr else "-4"
        rc, _, err = await _run("ip", fam, "route", "del", cidr, "proto", str(ROUTE_PROTO), check=False)
        if rc != 0 and "No such process" not in err and "No such file" not in err:
            raise NodeNetworkError(f"cannot delete the route to {cidr}: {err.strip()}")

    async def routes(self) -> dict[str, str]:
        """The routes with our protocol that this network owns: pod CIDR -> gateway."""
        owned = set(await asyncio.to_thread(_read_json, self._routes_file()) or [])
        out = {}
        for fam in ("-4", "-6"):
            _, text, _ = await _run("ip", "-j", fam, "route", "show", "proto", str(ROUTE_PROTO))
            for r in json.loads(text or "[]"):
                dst = r.get("dst", "")
                if dst in owned:
                    out[dst] = r.get("gateway", "")
        return out

    # ------------------------------------------------------------------ teardown

    async def teardown_node(self) -> None:
        """Removes all of this network from the node: every sandbox it set up (DEL and its
        namespace), portmap's rules left for this network, its routes, its nft table, the
        bridge, and its host-local store. Errors are collected; the first few raise at the end."""
        errors: list[str] = []
        for rec in await asyncio.to_thread(self._records):
            try:
                async with self._lock(rec["sandbox_id"]):
                    await self._teardown(rec, rec.get("netns", ""))
            except Exception as e:  # noqa: BLE001 - tear down the rest, report all at the end
                errors.append(f"sandbox {rec['sandbox_id']}: {e}")
        for tool in ("iptables", "ip6tables"):
            if shutil.which(tool, path=_TOOL_PATH) is None:
                continue
            try:
                await self._remove_portmap_rules(tool)
            except (_ToolError, OSError) as e:
                errors.append(str(e))
        async with self._routes_lock:
            for cidr in sorted(set(await asyncio.to_thread(_read_json, self._routes_file()) or [])):
                try:
                    await self._route_del(cidr)
                except NodeNetworkError as e:
                    errors.append(str(e))
            await asyncio.to_thread(_unlink, self._routes_file())
        t = self.nft_table
        try:
            await _run("nft", "-f", "-", stdin=f"table inet {t} {{}}\ndelete table inet {t}\n".encode())
            self._masq_ready = False
        except (_ToolError, OSError) as e:
            errors.append(str(e))
        if os.path.exists(f"/sys/class/net/{self.bridge}"):
            rc, _, err = await _run("ip", "link", "delete", self.bridge, "type", "bridge", check=False)
            if rc != 0 and os.path.exists(f"/sys/class/net/{self.bridge}"):
                errors.append(f"cannot delete bridge {self.bridge}: {err.strip()}")
        await asyncio.to_thread(shutil.rmtree, os.path.join(self.ipam_dir, self.network_name), True)
        if errors:
            raise NodeNetworkError("node network teardown: " + "; ".join(errors[:5]))

    async def _remove_portmap_rules(self, tool: str) -> None:
        """portmap's per-pod chains of this network (DEL removes them; this is for leftovers),
        then portmap's shared chains once no network uses them any more."""
        _, text, _ = await _run(tool, "-w", "-t", "nat", "-S")
        rules = [shlex.split(line) for line in text.splitlines() if line.startswith("-A ")]
        chains = {line.split()[1] for line in text.splitlines() if line.startswith("-N ")}
        marker = f'name: "{self.network_name}" id: '
        remaining_dnat = 0
        for r in rules:
            if r[1] != _HOSTPORT_DNAT:
                continue
            comment = r[r.index("--comment") + 1] if "--comment" in r else ""
            if marker not in comment:
                remaining_dnat += 1
                continue
            await _run(tool, "-w", "-t", "nat", "-D", *r[1:])
            target = r[r.index("-j") + 1] if "-j" in r else ""
            if target.startswith("CNI-DN-") and target in chains:
                await _run(tool, "-w", "-t", "nat", "-F", target)
                await _run(tool, "-w", "-t", "nat", "-X", target)
        if remaining_dnat or not chains.issuperset(_HOSTPORT_SHARED):
            return
        # No network uses portmap's shared chains any more: remove the jumps to them, then them.
        for r in rules:
            target = r[r.index("-j") + 1] if "-j" in r else ""
            if r[1] in ("PREROUTING", "OUTPUT", "POSTROUTING") and target in _HOSTPORT_SHARED:
                await _run(tool, "-w", "-t", "nat", "-D", *r[1:], check=False)
        for chain in _HOSTPORT_SHARED:
            await _run(tool, "-w", "-t", "nat", "-F", chain, check=False)
        for chain in _HOSTPORT_SHARED:
            await _run(tool, "-w", "-t", "nat", "-X", chain, check=False)
