"""The PodSecurity admission plugin in the API server (in-process, memory store): enforce refuses
with kube's message and stores nothing, warn and audit for pods and workloads, updates evaluated
only when they change what the checks read, subresources, namespace label checks and the
warnings about existing pods, exemptions from ``--admission-control-config-file``, and the
configuration file's errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from k8py.api import podsecurity as ps
from k8py.apiserver import server as srv
from k8py.apiserver.admission import Attributes
from k8py.apiserver.admission import config as admission_config
from k8py.apiserver.admission.podsecurity import PodSecurity
from k8py.apiserver.authn import UserInfo
from k8py.config import ServerConfig
from k8py.storage.memory import MemoryStore

Obj = dict[str, Any]
NS = "/api/v1/namespaces"
PRIVILEGED_DETAIL = (
    'privileged (container "c" must not set securityContext.privileged=true), '
    'allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false), '
    'unrestricted capabilities (container "c" must set securityContext.capabilities.drop=["ALL"]), '
    'runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true), '
    'seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to "RuntimeDefault" or '
    '"Localhost")')
RESTRICTED_SC = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True,
                 "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}}


async def _client(tmp_path: Path, **config: Any) -> AsyncIterator[TestClient]:
    store = MemoryStore(progress_interval=0.1)
    await store.start()
    cp = srv.build(ServerConfig(data_dir=str(tmp_path), **config), store)
    await cp.bootstrap()
    cp.http.ready = True
    async with TestClient(TestServer(cp.http.build())) as c:
        c.cp = cp  # type: ignore[attr-defined]
        yield c
    await store.close()


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[TestClient]:
    async for c in _client(tmp_path):
        yield c


def pod(name: str = "p", sc: Obj | None = None, image: str = "busybox:1.36", **spec: Any) -> Obj:
    container: Obj = {"name": "c", "image": image}
    if sc is not None:
        container["securityContext"] = sc
    return {"metadata": {"name": name}, "spec": {"containers": [container], **spec}}


def deployment(sc: Obj | None = None) -> Obj:
    p = pod(sc=sc)
    return {"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {
        "metadata": {"labels": {"a": "b"}}, "spec": p["spec"]}}}


def labels(enforce: str = "", warn: str = "", audit: str = "", **extra: str) -> dict[str, str]:
    out = {f"pod-security.kubernetes.io/{k}": v for k, v in (("enforce", enforce), ("warn", warn), ("audit", audit))
           if v}
    return {**out, **{f"pod-security.kubernetes.io/{k.replace('_', '-')}": v for k, v in extra.items()}}


async def namespace(api: TestClient, name: str, lbls: dict[str, str]) -> None:
    r = await api.post(NS, json={"metadata": {"name": name, "labels": lbls}})
    assert r.status == 201, await r.text()


def warnings(r: Any) -> list[str]:
    """Pod Security's Warning headers' texts (``299 - "text"``, quotes escaped as Go's %q): the
    seed policy's warnings about the same objects name a field path first."""
    texts = [w[len('299 - "'):-1].replace('\\"', '"') for w in r.headers.getall("Warning", [])]
    return [t for t in texts if not t.startswith(("spec.", "metadata."))]


async def test_enforce_refuses_a_privileged_pod_with_kubes_message_and_stores_nothing(api: TestClient) -> None:
    await namespace(api, "r", labels(enforce="restricted"))
    r = await api.post(f"{NS}/r/pods", json=pod(sc={"privileged": True}))
    assert r.status == 403
    body = await r.json()
    assert body["reason"] == "Forbidden"
    assert body["message"] == f'pods "p" is forbidden: violates PodSecurity "restricted:latest": {PRIVILEGED_DETAIL}'
    assert body["details"] == {"name": "p", "kind": "pods"}
    assert warnings(r) == []  # no warnings on a refused request
    assert (await api.get(f"{NS}/r/pods/p")).status == 404
    # a restricted pod is let in, without warnings
    r = await api.post(f"{NS}/r/pods", json=pod("ok", sc=RESTRICTED_SC))
    assert r.status == 201, await r.text()
    assert warnings(r) == []


async def test_enforce_version_pins_the_checks(api: TestClient) -> None:
    # runAsUser=0 is a restricted violation from v1.23 only
    await namespace(api, "old", labels(enforce="restricted", enforce_version="v1.22"))
    root = {**RESTRICTED_SC, "runAsUser": 0}
    r = await api.post(f"{NS}/old/pods", json=pod(sc=root))
    assert r.status == 201, await r.text()
    await namespace(api, "new", labels(enforce="restricted", enforce_version="v1.23"))
    r = await api.post(f"{NS}/new/pods", json=pod(sc=root))
    assert r.status == 403
    assert (await r.json())["message"] == ('pods "p" is forbidden: violates PodSecurity "restricted:v1.23": '
                                           'runAsUser=0 (container "c" must not set runAsUser=0)')


async def test_baseline_allows_what_it_should(api: TestClient) -> None:
    await namespace(api, "b", labels(enforce="baseline", warn="baseline"))
    ok = pod(sc={"capabilities": {"add": ["NET_BIND_SERVICE", "CHOWN"]}, "runAsUser": 0,
                 "seccompProfile": {"type": "RuntimeDefault"}},
             securityContext={"sysctls": [{"name": "net.ipv4.ip_local_port_range", "value": "1024 65535"}]},
             volumes=[{"name": "v", "emptyDir": {}}])
    r = await api.post(f"{NS}/b/pods", json=ok)
    assert r.status == 201, await r.text()
    assert warnings(r) == []
    r = await api.post(f"{NS}/b/pods", json=pod("hp", hostNetwork=True))
    assert r.status == 403
    assert (await r.json())["message"] == ('pods "hp" is forbidden: violates PodSecurity "baseline:latest": '
                                           "host namespaces (hostNetwork=true)")


async def test_warn_mode_warns_and_lets_pods_and_workloads_in(api: TestClient) -> None:
    await namespace(api, "w", labels(warn="restricted"))
    r = await api.post(f"{NS}/w/pods", json=pod(sc={"privileged": True}))
    assert r.status == 201
    assert warnings(r) == [f'would violate PodSecurity "restricted:latest": {PRIVILEGED_DETAIL}']
    r = await api.post("/apis/apps/v1/namespaces/w/deployments", json=deployment(sc={"privileged": True}))
    assert r.status == 201
    assert warnings(r) == [f'would violate PodSecurity "restricted:latest": {PRIVILEGED_DETAIL}']


async def test_workloads_are_never_refused_by_enforce(api: TestClient) -> None:
    await namespace(api, "e", labels(enforce="restricted"))
    r = await api.post("/apis/apps/v1/namespaces/e/deployments", json=deployment(sc={"privileged": True}))
    assert r.status == 201, await r.text()
    assert warnings(r) == []  # enforce alone says nothing about templates (warn or audit would)
    r = await api.post("/apis/batch/v1/namespaces/e/cronjobs", json={
        "metadata": {"name": "cj"}, "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {
            "spec": {"restartPolicy": "Never", **pod(sc={"privileged": True})["spec"]}}}}}})
    assert r.status == 201, await r.text()


async def test_pod_updates_are_checked_only_when_they_change_what_the_checks_read(api: TestClient) -> None:
    await namespace(api, "u", {})
    r = await api.post(f"{NS}/u/pods", json=pod(sc={"privileged": True}))
    assert r.status == 201
    r = await api.patch(f"{NS}/u", json={"metadata": {"labels": labels(enforce="restricted")}},
                        headers={"Content-Type": "application/merge-patch+json"})
    assert r.status == 200
    merge = {"Content-Type": "application/merge-patch+json"}
    # a label change is allowed although the pod violates the new level
    r = await api.patch(f"{NS}/u/pods/p", json={"metadata": {"labels": {"x": "y"}}}, headers=merge)
    assert r.status == 200, await r.text()
    # status updates are never evaluated
    r = await api.patch(f"{NS}/u/pods/p/status", json={"status": {"message": "hi"}}, headers=merge)
    assert r.status == 200, await r.text()
    # a new image is
    r = await api.patch(f"{NS}/u/pods/p", json={"spec": {"containers": [{"name": "c", "image": "busybox:1.37"}]}},
                        headers={"Content-Type": "application/strategic-merge-patch+json"})
    assert r.status == 403
    assert (await r.json())["message"] == \
        f'pods "p" is forbidden: violates PodSecurity "restricted:latest": {PRIVILEGED_DETAIL}'


async def test_ephemeral_containers_are_evaluated(api: TestClient) -> None:
    await namespace(api, "eph", labels(enforce="baseline"))
    r = await api.post(f"{NS}/eph/pods", json=pod())
    assert r.status == 201
    p = await (await api.get(f"{NS}/eph/pods/p")).json()
    p["spec"]["ephemeralContainers"] = [{"name": "debug", "image": "busybox:1.36",
                                         "securityContext": {"privileged": True}}]
    r = await api.put(f"{NS}/eph/pods/p/ephemeralcontainers", json=p)
    assert r.status == 403
    assert (await r.json())["message"] == ('pods "p" is forbidden: violates PodSecurity "baseline:latest": '
                                           'privileged (container "debug" must not set '
                                           "securityContext.privileged=true)")
    p["spec"]["ephemeralContainers"][0]["securityContext"] = {}
    r = await api.put(f"{NS}/eph/pods/p/ephemeralcontainers", json=p)
    assert r.status == 200, await r.text()


async def test_invalid_namespace_labels_are_refused(api: TestClient) -> None:
    r = await api.post(NS, json={"metadata": {"name": "bad", "labels": labels(enforce="strict")}})
    assert r.status == 422
    body = await r.json()
    assert body["message"] == ('Namespace "bad" is invalid: metadata.labels[pod-security.kubernetes.io/enforce]: '
                               'Invalid value: "strict": must be one of privileged, baseline, restricted')
    assert body["details"]["causes"] == [{"reason": "FieldValueInvalid", "field":
                                          "metadata.labels[pod-security.kubernetes.io/enforce]", "message":
                                          'Invalid value: "strict": must be one of privileged, baseline, restricted'}]
    assert (await api.get(f"{NS}/bad")).status == 404
    await namespace(api, "good", {})
    r = await api.patch(f"{NS}/good", json={"metadata": {"labels": labels(warn_version="1.25")}},
                        headers={"Content-Type": "application/merge-patch+json"})
    assert r.status == 422
    assert (await r.json())["message"] == (
        'Namespace "good" is invalid: metadata.labels[pod-security.kubernetes.io/warn-version]: Invalid value: '
        '"1.25": must be "latest" or "v1.x"')
    ns = await (await api.get(f"{NS}/good")).json()
    assert "pod-security.kubernetes.io/warn-version" not in ns["metadata"]["labels"]


async def test_changing_the_enforce_label_warns_about_existing_pods(api: TestClient) -> None:
    await namespace(api, "x", {})
    for name in ("web-2", "web-1"):
        assert (await api.post(f"{NS}/x/pods", json=pod(name, sc={"privileged": True}))).status == 201
    assert (await api.post(f"{NS}/x/pods", json=pod("host", hostPID=True))).status == 201
    assert (await api.post(f"{NS}/x/pods", json=pod("fine", sc=RESTRICTED_SC))).status == 201
    merge = {"Content-Type": "application/merge-patch+json"}
    r = await api.patch(f"{NS}/x", json={"metadata": {"labels": labels(enforce="baseline")}}, headers=merge)
    assert r.status == 200, await r.text()
    assert warnings(r) == [
        'existing pods in namespace "x" violate the new PodSecurity enforce level "baseline:latest"',
        "host: host namespaces",
        "web-1 (and 1 other pod): privileged"]
    ns = await (await api.get(f"{NS}/x")).json()
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "baseline"  # never refused
    r = await api.patch(f"{NS}/x", json={"metadata": {"labels": labels(enforce="restricted")}}, headers=merge)
    assert warnings(r) == [
        'existing pods in namespace "x" violate the new PodSecurity enforce level "restricted:latest"',
        ("host: host namespaces, allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot != true, "
        "seccompProfile"),
        ("web-1 (and 1 other pod): privileged, allowPrivilegeEscalation != false, unrestricted capabilities, "
        "runAsNonRoot != true, seccompProfile")]
    # relaxing at the same version, or an unchanged enforce level, checks nothing
    r = await api.patch(f"{NS}/x", json={"metadata": {"labels": labels(enforce="baseline")}}, headers=merge)
    assert warnings(r) == []
    r = await api.patch(f"{NS}/x", json={"metadata": {"labels": {"team": "a"}}}, headers=merge)
    assert warnings(r) == []


async def test_audit_mode_annotates_the_request(api: TestClient) -> None:
    await namespace(api, "a", labels(audit="restricted", enforce="baseline"))
    plugin = api.cp.api.admission.plugin("PodSecurity")  # type: ignore[attr-defined]
    registry = api.cp.registry  # type: ignore[attr-defined]
    pods = registry.by_resource("", "v1", "pods")
    attrs = Attributes("CREATE", pods, "a", "p")
    await plugin.validate(attrs, pod(sc={"runAsUser": 0}), None)
    assert attrs.audit_annotations == {
        "pod-security.kubernetes.io/enforce-policy": "baseline:latest",
        "pod-security.kubernetes.io/audit-violations": (
            'would violate PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container "c" must '
            'set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container "c" must set '
            'securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or container "c" must set '
            'securityContext.runAsNonRoot=true), runAsUser=0 (container "c" must not set runAsUser=0), '
            'seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to "RuntimeDefault" '
            'or "Localhost")')}
    assert attrs.warnings == []
    # a privileged namespace records only the enforced policy
    await namespace(api, "open", {})
    attrs = Attributes("CREATE", pods, "open", "p")
    await plugin.validate(attrs, pod(sc={"privileged": True}), None)
    assert attrs.audit_annotations == {"pod-security.kubernetes.io/enforce-policy": "privileged:latest"}


async def test_exemptions(api: TestClient) -> None:
    await namespace(api, "r", labels(enforce="restricted"))
    registry = api.cp.registry  # type: ignore[attr-defined]
    plugin = PodSecurity(api.cp.api.objects, registry, ps.Configuration(  # type: ignore[attr-defined]
        exempt_namespaces=frozenset({"r"})))
    pods = registry.by_resource("", "v1", "pods")
    attrs = Attributes("CREATE", pods, "r", "p")
    await plugin.validate(attrs, pod(sc={"privileged": True}), None)
    assert attrs.audit_annotations == {"pod-security.kubernetes.io/exempt": "namespace"}
    plugin.config = ps.Configuration(exempt_usernames=frozenset({"ci"}))
    attrs = Attributes("CREATE", pods, "r", "p", user=UserInfo("ci"))
    await plugin.validate(attrs, pod(sc={"privileged": True}), None)
    assert attrs.audit_annotations == {"pod-security.kubernetes.io/exempt": "user"}
    plugin.config = ps.Configuration(exempt_runtime_classes=frozenset({"kata"}))
    attrs = Attributes("CREATE", pods, "r", "p")
    await plugin.validate(attrs, pod(sc={"privileged": True}, runtimeClassName="kata"), None)
    assert attrs.audit_annotations == {"pod-security.kubernetes.io/exempt": "runtimeClass"}
    with pytest.raises(Exception, match="violates PodSecurity"):
        await plugin.validate(Attributes("CREATE", pods, "r", "p"), pod(sc={"privileged": True}), None)


CONFIG = """\
apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
- name: PodSecurity
  configuration:
    apiVersion: pod-security.admission.config.k8s.io/v1
    kind: PodSecurityConfiguration
    defaults:
      enforce: baseline
      warn: restricted
    exemptions:
      namespaces: [kube-system]
"""


async def test_the_admission_configuration_file_sets_defaults_and_exemptions(tmp_path: Path) -> None:
    path = tmp_path / "admission.yaml"
    path.write_text(CONFIG)
    async for api in _client(tmp_path, admission_control_config_file=str(path)):
        await namespace(api, "plain", {})
        r = await api.post(f"{NS}/plain/pods", json=pod(hostIPC=True))
        assert r.status == 403
        assert (await r.json())["message"] == ('pods "p" is forbidden: violates PodSecurity "baseline:latest": '
                                               "host namespaces (hostIPC=true)")
        r = await api.post(f"{NS}/plain/pods", json=pod())
        assert r.status == 201
        assert warnings(r)[0].startswith('would violate PodSecurity "restricted:latest": allowPrivilegeEscalation')
        r = await api.post(f"{NS}/kube-system/pods", json=pod(hostIPC=True))
        assert r.status == 201, await r.text()


def test_configuration_file_errors_name_the_file_the_line_and_the_field(tmp_path: Path) -> None:
    path = tmp_path / "admission.yaml"
    path.write_text(CONFIG.replace("enforce: baseline", "enforce: strict").replace("[kube-system]", "[a, a]"))
    with pytest.raises(admission_config.AdmissionConfigError) as e:
        admission_config.from_file(str(path))
    assert str(e.value) == (
        f"admission plugin PodSecurity: {path}:9: plugins[0].configuration.defaults.enforce: Invalid value: "
        '"strict": must be one of privileged, baseline, restricted\n'
        f"{path}:12: plugins[0].configuration.exemptions.namespaces[1]: Duplicate value: \"a\"")
    path.write_text("apiVersion: apiserver.config.k8s.io/v1\nkind: AdmissionConfiguration\nplugins:\n- name: [\n")
    with pytest.raises(admission_config.AdmissionConfigError, match=r":5: --admission-control-config-file is not "
                                                                    r"valid YAML or JSON"):
        admission_config.from_file(str(path))
    path.write_text(CONFIG.replace("PodSecurity", "EventRateLimit", 1))
    with pytest.raises(admission_config.AdmissionConfigError,
                       match="admission plugin EventRateLimit is not an admission plugin k8py has"):
        admission_config.from_file(str(path))
    path.write_text(CONFIG.replace("PodSecurity", "NamespaceLifecycle", 1))
    with pytest.raises(admission_config.AdmissionConfigError,
                       match="admission plugin NamespaceLifecycle does not take a configuration in k8py"):
        admission_config.from_file(str(path))
    path.write_text("apiVersion: apiserver.config.k8s.io/v1\nkind: AdmissionConfig\nplugin: []\n")
    with pytest.raises(admission_config.AdmissionConfigError) as e:
        admission_config.from_file(str(path))
    assert str(e.value) == (f'{path}:2: kind: Unsupported value: "AdmissionConfig": supported values: '
                            f'"AdmissionConfiguration"\n{path}:3: plugin: Forbidden: unknown field')


def test_a_plugin_configuration_in_a_file_of_its_own(tmp_path: Path) -> None:
    (tmp_path / "pss.yaml").write_text(
        "apiVersion: pod-security.admission.config.k8s.io/v1\nkind: PodSecurityConfiguration\n"
        "defaults:\n  audit: restricted\n  audit-version: v1.30\nexemptions:\n  usernames: [ci, '']\n")
    path = tmp_path / "admission.yaml"
    path.write_text("apiVersion: apiserver.config.k8s.io/v1\nkind: AdmissionConfiguration\n"
                    "plugins:\n- name: PodSecurity\n  path: pss.yaml\n")
    with pytest.raises(admission_config.AdmissionConfigError) as e:
        admission_config.from_file(str(path))
    assert str(e.value) == (f"admission plugin PodSecurity: {tmp_path / 'pss.yaml'}:7: "
                            "exemptions.usernames[1]: Required value")
    (tmp_path / "pss.yaml").write_text((tmp_path / "pss.yaml").read_text().replace(", ''", ""))
    conf = admission_config.from_file(str(path))["PodSecurity"]
    assert conf.defaults.audit == ps.LevelVersion(ps.Level.RESTRICTED, ps.Version(30))
    assert conf.exempt_usernames == {"ci"}


async def test_existing_pods_are_checked_one_per_controller_first_and_at_most_the_limit(
        api: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    from k8py.apiserver.admission import podsecurity as plugin_module

    await namespace(api, "many", {})

    def owned(name: str, uid: str) -> Obj:
        p = pod(name, sc={"privileged": True})
        p["metadata"]["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": f"rs-{uid}",
                                             "uid": uid, "controller": True}]
        return p

    # listed in name order: two pods of one ReplicaSet, then one of another, then a host-network pod
    for p in (owned("a-1", "u1"), owned("a-2", "u1"), owned("b-1", "u2"), pod("c", hostNetwork=True)):
        assert (await api.post(f"{NS}/many/pods", json=p)).status == 201
    monkeypatch.setattr(plugin_module, "NAMESPACE_MAX_PODS_TO_CHECK", 3)
    r = await api.patch(f"{NS}/many", json={"metadata": {"labels": labels(enforce="baseline")}},
                        headers={"Content-Type": "application/merge-patch+json"})
    assert r.status == 200
    # a-2 (the ReplicaSet's second pod) is the one left unchecked, not c
    assert warnings(r) == [
        "new PodSecurity enforce level only checked against the first 3 of 4 existing pods",
        'existing pods in namespace "many" violate the new PodSecurity enforce level "baseline:latest"',
        "a-1 (and 1 other pod): privileged",
        "c: host namespaces"]


async def test_invalid_labels_already_stored_fail_closed_for_enforce(api: TestClient) -> None:
    cp = api.cp  # type: ignore[attr-defined]
    ns_kind = cp.registry.by_resource("", "v1", "namespaces")
    # labels stored before the plugin checked them (written past admission)
    await cp.objects.create(ns_kind, {"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": "old", "labels": labels(enforce="strict", warn="nope")}, "spec": {}, "status": {"phase": "Active"}})
    plugin = cp.api.admission.plugin("PodSecurity")
    pods = cp.registry.by_resource("", "v1", "pods")
    attrs = Attributes("CREATE", pods, "old", "p")
    with pytest.raises(Exception, match='violates PodSecurity "restricted:latest"'):
        await plugin.validate(attrs, pod(), None)
    assert attrs.audit_annotations["pod-security.kubernetes.io/error"] == (
        "Failed to parse policy: [metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: \"strict\": "
        "must be one of privileged, baseline, restricted, metadata.labels[pod-security.kubernetes.io/warn]: Invalid "
        'value: "nope": must be one of privileged, baseline, restricted]')
    assert attrs.warnings == []  # an invalid warn level is privileged
    # the namespace can still be updated while its bad labels stay as they were
    r = await api.patch(f"{NS}/old", json={"metadata": {"annotations": {"a": "b"}}},
                        headers={"Content-Type": "application/merge-patch+json"})
    assert r.status == 200, await r.text()


async def test_a_namespace_that_cannot_be_read(api: TestClient) -> None:
    cp = api.cp  # type: ignore[attr-defined]
    plugin = cp.api.admission.plugin("PodSecurity")
    attrs = Attributes("CREATE", cp.registry.by_resource("", "v1", "pods"), "gone", "p")
    with pytest.raises(Exception, match="failed to lookup namespace gone") as e:
        await plugin.validate(attrs, pod(), None)
    assert e.value.code == 500  # type: ignore[attr-defined]
    attrs = Attributes("CREATE", cp.registry.by_resource("apps", "v1", "deployments"), "gone", "d")
    await plugin.validate(attrs, deployment(sc={"privileged": True}), None)  # a workload is let through
    assert attrs.audit_annotations == {"pod-security.kubernetes.io/error": "failed to lookup namespace gone"}
