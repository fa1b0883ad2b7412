"""Admission webhooks for CONNECT and ``/scale`` on a real ``k8py server`` with real kubectl and
the official Python client: a validating webhook (tests/helpers/webhookserver.py, by URL on
``localhost``) that refuses ``kubectl exec`` of ``rm`` and ``kubectl scale`` past 5 replicas, and
a mutating one that turns an exec of ``danger`` into ``echo tamed``; ``kubectl port-forward`` is
refused. kubectl shows the webhook's words; the webhooks are sent what kube sends
(``PodExecOptions`` for an exec, an ``autoscaling/v1 Scale`` for a scale).

Pod ``p`` has no node: an admitted exec goes on to kube's "does not have a host assigned". Pod
``run`` is on a kubelet on loopback (k8py's KubeletServer over a fake runtime whose ``echo``
answers, as in tests/apiserver/test_kubeletproxy.py): what it runs is the mutated command."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, cast

import pytest
from tests.apiserver.test_kubeletproxy import KubeletThread
from tests.e2e.conftest import KUBECTL, Server, manifest, start_server, wait
from tests.helpers.webhookserver import Review, WebhookThread, allow, deny, json_patch
from tests.kubelet.test_server import FakeRuntime

from k8py import pki as pki_mod
from k8py.kubelet.server import KubeletServer

NS = "default"


def _validate(review: Review) -> Review:
    req = review["request"]
    obj = req.get("object") or {}
    if req.get("subResource") == "exec" and "rm" in (obj.get("command") or []):
        return deny(review, "rm is not run in pods here")
    if req.get("subResource") == "portforward":
        return deny(review, "no port-forward here")
    if req.get("subResource") == "scale" and obj["spec"]["replicas"] > 5:
        return deny(review, f"at most 5 replicas, not {obj['spec']['replicas']}")
    return allow(review)


def _mutate(review: Review) -> Review:
    obj = review["request"].get("object") or {}
    if obj.get("command") == ["danger"]:
        return json_patch(review, [{"op": "replace", "path": "/command", "value": ["echo", "tamed"]}])
    return allow(review)


# a custom resource with a scale subresource
GADGETS = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "gadgets.k8py.test"},
    "spec": {"group": "k8py.test", "scope": "Namespaced",
             "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
             "versions": [{"name": "v1", "served": True, "storage": True,
                           "subresources": {"scale": {"specReplicasPath": ".spec.replicas",
                                                      "statusReplicasPath": ".status.replicas"}},
                           "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                               "spec": {"type": "object", "properties": {"replicas": {"type": "integer"}}},
                               "status": {"type": "object", "properties": {"replicas": {"type": "integer"}}}}}}}]}}


def _kubelet(s: Server, tmp: Any) -> KubeletThread:
    """A kubelet API on loopback serving node ``node-1`` (registered with its address and port)
    over a fake runtime, and pod ``run`` on it with a running container ``c``."""
    p = pki_mod.PKI.in_dir(str(s.data_dir / "tls"))
    cert, key = pki_mod.issue_kubelet_serving_certificate(p, "node-1", ips=("127.0.0.1",))
    (tmp / "kubelet.crt").write_bytes(cert)
    (tmp / "kubelet.key").write_bytes(key)
    rt = FakeRuntime(tmp / "pods")
    pods: list[dict[str, Any]] = []
    kubelet = KubeletServer(cast(Any, rt), lambda: list(pods), node_name="node-1", host="127.0.0.1", port=0,
                            cert_file=str(tmp / "kubelet.crt"), key_file=str(tmp / "kubelet.key"),
                            client_ca_file=p.ca_cert, poll_interval=0.05)
    kt = KubeletThread(kubelet)
    kt.start()
    s.kubectl("create", "-f", "-", input=manifest({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"}}))
    s.kubectl("patch", "node", "node-1", "--subresource=status", "--type=merge", "-p", json.dumps({"status": {
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet.port}}}}))
    pod = json.loads(s.kubectl("create", "-o", "json", "-f", "-", input=manifest({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "run", "namespace": NS},
        "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "busybox"}]}})).stdout)
    pods.append(pod)
    rt.add(NS, "run", pod["metadata"]["uid"], "c")
    return kt


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, WebhookThread]]:
    if not KUBECTL:
        pytest.skip("kubectl is not installed")
    tmp = tmp_path_factory.mktemp("connect")
    s = start_server(tmp)
    hooks = WebhookThread(("localhost",), {"/validate": _validate, "/mutate": _mutate}).start()
    kt: KubeletThread | None = None
    rules = [{"operations": ["CONNECT"], "apiGroups": [""], "apiVersions": ["v1"],
              "resources": ["pods/exec", "pods/portforward"]},
             {"operations": ["UPDATE"], "apiGroups": ["apps", "k8py.test"], "apiVersions": ["v1"],
              "resources": ["deployments/scale", "gadgets/scale"]}]

    def config(kind: str, path: str) -> dict[str, Any]:
        return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind, "metadata": {"name": "connect"},
                "webhooks": [{"name": "connect.k8py.test",
                              "clientConfig": {"url": f"https://localhost:{hooks.port}{path}",
                                               "caBundle": hooks.ca_bundle},
                              "rules": rules, "sideEffects": "None", "admissionReviewVersions": ["v1"],
                              "timeoutSeconds": 5}]}

    try:
        kt = _kubelet(s, tmp)
        s.kubectl("apply", "-f", "-", input=manifest(
            config("ValidatingWebhookConfiguration", "/validate"), config("MutatingWebhookConfiguration", "/mutate"),
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": NS},
             "spec": {"containers": [{"name": "c", "image": "busybox"}]}}))
        s.kubectl("create", "deployment", "d", "--image=nginx", "--replicas=1", "-n", NS)
        s.kubectl("apply", "-f", "-", input=manifest(GADGETS))
        s.kubectl("wait", "--for=condition=Established", "crd/gadgets.k8py.test", "--timeout=30s")
        s.kubectl("apply", "-f", "-", input=manifest({"apiVersion": "k8py.test/v1", "kind": "Gadget",
                                                      "metadata": {"name": "g", "namespace": NS},
                                                      "spec": {"replicas": 2}}))
        # the configurations reach the API server's cache through its watch: wait for both to act
        wait(lambda: "rm is not run" in s.kubectl("exec", "p", "-n", NS, "--", "rm", "-rf", "/",
                                                  check=False).stderr, 30, "the webhook called for exec")
        wait(lambda: s.kubectl("exec", "run", "-n", NS, "--", "danger", check=False).stdout == "tamed\n", 30,
             "the mutating webhook called for exec")
        yield s, hooks
    finally:
        hooks.close()
        if kt is not None:
            kt.stop()
        s.stop()


def _reviews(hooks: WebhookThread, sub: str) -> list[dict[str, Any]]:
    return [r["request"] for _, r in hooks.seen if r["request"].get("subResource") == sub]


def test_kubectl_exec_is_refused_with_the_webhooks_message(cluster: tuple[Server, WebhookThread]) -> None:
    s, hooks = cluster
    hooks.seen.clear()
    p = s.kubectl("exec", "p", "-n", NS, "-c", "c", "--", "rm", "-rf", "/tmp/x", check=False)
    assert p.returncode != 0
    # kubectl's words for a refused upgrade (its WebSocket executor falls back to SPDY on a refusal)
    assert p.stderr == ('error: unable to upgrade connection: admission webhook "connect.k8py.test" denied the '
                        "request: rm is not run in pods here\n")
    reviews = _reviews(hooks, "exec")
    assert reviews, hooks.seen
    req = reviews[-1]
    assert (req["operation"], req["name"], req["namespace"]) == ("CONNECT", "p", NS)
    assert req["kind"] == {"group": "", "version": "v1", "kind": "PodExecOptions"}
    assert req["resource"] == {"group": "", "version": "v1", "resource": "pods"}
    assert req["userInfo"]["username"] == "system:admin"
    # kubectl asks for stdout and stderr (no stdin, no tty)
    assert req["object"] == {"kind": "PodExecOptions", "apiVersion": "v1", "stdout": True, "stderr": True,
                             "container": "c", "command": ["rm", "-rf", "/tmp/x"]}


def test_an_admitted_exec_goes_on_to_the_pod(cluster: tuple[Server, WebhookThread]) -> None:
    s, hooks = cluster
    hooks.seen.clear()
    p = s.kubectl("exec", "p", "-n", NS, "--", "ls", check=False)
    assert p.returncode != 0
    assert "pod p does not have a host assigned" in p.stderr
    assert [r["object"]["command"] for r in _reviews(hooks, "exec")][-1:] == [["ls"]]


def test_kubectl_scale_is_refused_and_the_webhook_sees_a_scale(cluster: tuple[Server, WebhookThread]) -> None:
    s, hooks = cluster
    hooks.seen.clear()
    p = s.kubectl("scale", "deployment", "d", "-n", NS, "--replicas=7", check=False)
    assert p.returncode != 0
    assert p.stderr == ('Error from server (Forbidden): admission webhook "connect.k8py.test" denied the '
                        "request: at most 5 replicas, not 7\n")
    req = _reviews(hooks, "scale")[-1]
    assert (req["operation"], req["name"]) == ("UPDATE", "d")
    assert req["kind"] == {"group": "autoscaling", "version": "v1", "kind": "Scale"}
    assert req["resource"] == {"group": "apps", "version": "v1", "resource": "deployments"}
    assert (req["object"]["kind"], req["object"]["spec"], req["oldObject"]["spec"]) == \
        ("Scale", {"replicas": 7}, {"replicas": 1})
    assert s.kjson("get", "deployment", "d", "-n", NS)["spec"]["replicas"] == 1
    assert s.kubectl("scale", "deployment", "d", "-n", NS, "--replicas=3").stdout == "deployment.apps/d scaled\n"
    assert s.kjson("get", "deployment", "d", "-n", NS)["spec"]["replicas"] == 3


def test_a_custom_resources_scale_is_reviewed_as_a_scale(cluster: tuple[Server, WebhookThread]) -> None:
    s, hooks = cluster
    hooks.seen.clear()
    p = s.kubectl("scale", "gadget", "g", "-n", NS, "--replicas=8", check=False)
    assert p.stderr == ('Error from server (Forbidden): admission webhook "connect.k8py.test" denied the '
                        "request: at most 5 replicas, not 8\n")
    req = _reviews(hooks, "scale")[-1]
    assert req["kind"] == {"group": "autoscaling", "version": "v1", "kind": "Scale"}
    assert req["resource"] == {"group": "k8py.test", "version": "v1", "resource": "gadgets"}
    assert (req["object"]["spec"], req["oldObject"]["spec"]) == ({"replicas": 8}, {"replicas": 2})
    assert s.kubectl("scale", "gadget", "g", "-n", NS, "--replicas=4").stdout == "gadget.k8py.test/g scaled\n"
    assert s.kjson("get", "gadget", "g", "-n", NS)["spec"]["replicas"] == 4


def test_the_python_clients_exec_is_refused(cluster: tuple[Server, WebhookThread]) -> None:
    from kubernetes import client
    from kubernetes.client.rest import ApiException
    from kubernetes.stream import stream

    s, hooks = cluster
    hooks.seen.clear()
    core = client.CoreV1Api(s.client())
    with pytest.raises(ApiException) as e:
        stream(core.connect_get_namespaced_pod_exec, "p", NS, command=["rm", "-rf", "/"], stderr=True,
               stdin=False, stdout=True, tty=False)
    # the client's words for a refused WebSocket handshake: the status, then the Status it carried
    why = str(e.value.reason)
    assert why.startswith("Handshake status 403 Forbidden"), why
    assert '"message":"admission webhook \\"connect.k8py.test\\" denied the request: rm is not run in pods here"' \
        in why, why
    assert _reviews(hooks, "exec")[-1]["object"]["command"] == ["rm", "-rf", "/"]


def test_what_runs_is_the_mutated_command(cluster: tuple[Server, WebhookThread]) -> None:
    s, hooks = cluster
    hooks.seen.clear()
    p = s.kubectl("exec", "run", "-n", NS, "--", "danger")
    assert p.stdout == "tamed\n"
    # the mutating webhook was sent what kubectl asked for; the validating one, and the kubelet, the patched one
    assert [r["object"]["command"] for r in _reviews(hooks, "exec")] == [["danger"], ["echo", "tamed"]]
    assert s.kubectl("exec", "run", "-n", NS, "--", "echo", "as", "asked").stdout == "as asked\n"


def test_kubectl_port_forward_is_refused(cluster: tuple[Server, WebhookThread]) -> None:
    s, hooks = cluster
    # kubectl forwards only to a running pod: say so for the pod on the loopback kubelet
    s.kubectl("patch", "pod", "run", "-n", NS, "--subresource=status", "--type=merge",
              "-p", '{"status":{"phase":"Running"}}')
    hooks.seen.clear()
    p = s.kubectl("port-forward", "-n", NS, "pod/run", ":22", check=False, timeout=30)
    assert p.returncode != 0
    assert p.stderr == ('error: error upgrading connection: unable to upgrade connection: admission webhook '
                        '"connect.k8py.test" denied the request: no port-forward here\n')
    req = _reviews(hooks, "portforward")[-1]
    assert (req["operation"], req["name"], req["kind"]["kind"]) == ("CONNECT", "run", "PodPortForwardOptions")
    # kubectl names the ports in its streams' headers, not in the request: the options have none
    assert req["object"] == {"kind": "PodPortForwardOptions", "apiVersion": "v1"}
