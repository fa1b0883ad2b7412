"""Which endpoints get traffic (kube-proxy's CategorizeEndpoints) and what a Service programs."""

from __future__ import annotations

from k8py.proxy.model import Endpoint, ServicePort, service_ports, slice_endpoints, usable_endpoints

LOCAL, OTHER = "node-a", "node-b"


def sp(**kw: object) -> ServicePort:
    return ServicePort("ns", "web", "http", "tcp", 80, ("10.43.0.5",), **kw)  # type: ignore[arg-type]


def test_ready_endpoints_win_then_serving_terminating_ones() -> None:
    ready = Endpoint("10.42.0.2", 8080, node_name=LOCAL)
    draining = Endpoint("10.42.0.3", 8080, ready=False, serving=True, terminating=True, node_name=LOCAL)
    dead = Endpoint("10.42.0.4", 8080, ready=False, serving=False, terminating=True, node_name=LOCAL)
    assert usable_endpoints(sp(), [ready, draining, dead], LOCAL, external=False) == [ready]
    # none ready: the serving ones still terminating take the traffic, so connections drain
    assert usable_endpoints(sp(), [draining, dead], LOCAL, external=False) == [draining]
    assert usable_endpoints(sp(), [dead], LOCAL, external=False) == []


def test_local_traffic_policies_use_only_this_nodes_endpoints() -> None:
    here = Endpoint("10.42.0.2", 8080, node_name=LOCAL)
    there = Endpoint("10.42.1.2", 8080, node_name=OTHER)
    internal = sp(internal_local=True)
    assert usable_endpoints(internal, [here, there], LOCAL, external=False) == [here]
    assert usable_endpoints(internal, [there], LOCAL, external=False) == []  # no local one: nothing (kube drops)
    assert usable_endpoints(internal, [here, there], LOCAL, external=True) == [here, there]
    external = sp(external_local=True, node_port=30080)
    assert usable_endpoints(external, [here, there], LOCAL, external=True) == [here]
    assert usable_endpoints(external, [here, there], LOCAL, external=False) == [here, there]


def test_service_ports_from_a_service() -> None:
    svc = {"metadata": {"namespace": "ns", "name": "web"},
           "spec": {"type": "LoadBalancer", "clusterIP": "10.43.0.5", "clusterIPs": ["10.43.0.5", "fd43::5"],
                    "externalIPs": ["192.0.2.9"], "sessionAffinity": "ClientIP",
                    "externalTrafficPolicy": "Local", "internalTrafficPolicy": "Cluster",
                    "ports": [{"name": "http", "port": 80, "nodePort": 30080},
                              {"name": "dns", "port": 53, "protocol": "UDP", "nodePort": 30053}]},
           "status": {"loadBalancer": {"ingress": [{"ip": "10.45.0.1"}]}}}
    ports = service_ports(svc)
    assert [(p.port_name, p.protocol, p.node_port) for p in ports] == [("http", "tcp", 30080), ("dns", "udp", 30053)]
    assert ports[0].cluster_ips == ("10.43.0.5", "fd43::5")
    assert ports[0].external_ips == ("192.0.2.9", "10.45.0.1")
    assert ports[0].affinity_timeout == 10800 and ports[0].external_local and not ports[0].internal_local
    assert service_ports({**svc, "spec": {**svc["spec"], "clusterIP": "None", "clusterIPs": ["None"]}}) == []
    assert service_ports({"metadata": {}, "spec": {"type": "ExternalName", "externalName": "x.example"}}) == []


def test_slice_endpoints_by_port_name_and_protocol() -> None:
    sl = {"ports": [{"name": "http", "port": 8080, "protocol": "TCP"}, {"name": "dns", "port": 5353,
                                                                        "protocol": "UDP"}],
          "endpoints": [{"addresses": ["10.42.0.2"], "conditions": {"ready": True}, "nodeName": LOCAL},
                        {"addresses": ["10.42.0.3"], "conditions": {"ready": False, "serving": True,
                                                                    "terminating": True}}]}
    got = slice_endpoints(sl)
    assert [(e.ip, e.port, e.ready, e.terminating) for e in got[("http", "tcp")]] == [
        ("10.42.0.2", 8080, True, False), ("10.42.0.3", 8080, False, True)]
    assert [e.port for e in got[("dns", "udp")]] == [5353, 5353]
