"""Pod Security Standards' checks, table-driven against kube's own cases
(``staging/src/k8s.io/pod-security-admission/policy/check_*_test.go`` and the pass/fail fixtures
of ``test/fixtures_*.go``): each check's forbidden reason and detail texts, the version at which
each revision applies, the order and aggregation of a level's results, the namespace labels and
the PodSecurityConfiguration."""

from __future__ import annotations

from typing import Any

import pytest

from k8py.api import podsecurity as ps
from k8py.api.errors import FieldErrorType

Obj = dict[str, Any]

B, R, P = ps.Level.BASELINE, ps.Level.RESTRICTED, ps.Level.PRIVILEGED


def lv(level: ps.Level, minor: int | None = None) -> ps.LevelVersion:
    return ps.LevelVersion(level, ps.Version(minor))


def c(name: str, sc: Obj | None = None, **kw: Any) -> Obj:
    out: Obj = {"name": name, "image": "busybox", **kw}
    if sc is not None:
        out["securityContext"] = sc
    return out


def restricted_container(name: str, **sc: Any) -> Obj:
    """A container that passes restricted (kube's fixtures' ensureSecurityContext defaults)."""
    return c(name, {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True,
                    "seccompProfile": {"type": "RuntimeDefault"}, **sc})


def violations(level: ps.LevelVersion, spec: Obj, meta: Obj | None = None) -> list[tuple[str, str]]:
    return [(v.reason, v.detail) for v in ps.evaluate_pod(level, meta or {}, spec)]


def only(level: ps.LevelVersion, spec: Obj, meta: Obj | None = None) -> tuple[str, str] | None:
    """The one violation of ``spec`` (asserting there is at most one)."""
    found = violations(level, spec, meta)
    assert len(found) <= 1, found
    return found[0] if found else None


# (id, level, spec, metadata, expected (reason, detail) or None when allowed)
CASES: list[tuple[str, ps.LevelVersion, Obj, Obj | None, tuple[str, str] | None]] = [
    # --- privileged
    ("privileged", lv(B), {"containers": [c("a"), c("b", {"privileged": False}), c("c", {"privileged": True}),
                                          c("d", {"privileged": True})]}, None,
     ("privileged", 'containers "c", "d" must not set securityContext.privileged=true')),
    ("privileged init container", lv(B), {"initContainers": [c("i", {"privileged": True})], "containers": [c("a")]},
     None, ("privileged", 'container "i" must not set securityContext.privileged=true')),
    # --- host namespaces
    ("host namespaces", lv(B), {"hostNetwork": True, "hostIPC": True, "hostPID": True, "containers": [c("a")]},
     None, ("host namespaces", "hostNetwork=true, hostPID=true, hostIPC=true")),
    ("host network only", lv(B), {"hostNetwork": True, "hostPID": False, "containers": [c("a")]}, None,
     ("host namespaces", "hostNetwork=true")),
    # --- host ports (check_hostPorts_test.go)
    ("one host port", lv(B), {"containers": [c("a", ports=[{"hostPort": 0}]),
                                             c("b", ports=[{"hostPort": 0}, {"hostPort": 20}])]}, None,
     ("hostPort", 'container "b" uses hostPort 20')),
    ("host ports", lv(B), {"containers": [c("a", ports=[{"hostPort": 0}]),
                                          c("b", ports=[{"hostPort": 0}, {"hostPort": 10}, {"hostPort": 20}]),
                                          c("c", ports=[{"hostPort": 0}, {"hostPort": 10}, {"hostPort": 30}])]},
     None, ("hostPort", 'containers "b", "c" use hostPorts 10, 20, 30')),
    ("container port without host port", lv(B), {"containers": [c("a", ports=[{"containerPort": 80}])]}, None,
     None),
    # --- hostPath volumes (baseline); restricted reports them as restricted volume types instead
    ("hostPath volumes", lv(B), {"containers": [c("a")], "volumes": [
        {"name": "a", "hostPath": {"path": "/a"}}, {"name": "b", "emptyDir": {}},
        {"name": "c", "hostPath": {"path": "/c"}}]}, None, ("hostPath volumes", 'volumes "a", "c"')),
    # --- capabilities (check_capabilities_baseline_test.go)
    ("non-default capabilities", lv(B), {"containers": [
        c("a", {"capabilities": {"add": ["FOO", "BAR"]}}), c("b", {"capabilities": {"add": ["BAR", "BAZ"]}}),
        c("c", {"capabilities": {"add": ["NET_BIND_SERVICE", "CHOWN"]}})]}, None,
     ("non-default capabilities",
      'containers "a", "b" must not include "BAR", "BAZ", "FOO" in securityContext.capabilities.add')),
    ("default capabilities", lv(B), {"containers": [c("a", {"capabilities": {"add": [
        "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE", "SETFCAP",
        "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"]}})]}, None, None),
    ("NET_RAW is not a default capability", lv(B), {"containers": [c("a", {"capabilities": {"add": ["NET_RAW"]}})]},
     None, ("non-default capabilities", 'container "a" must not include "NET_RAW" in securityContext.capabilities.add')),
    # --- AppArmor (check_appArmorProfile_test.go)
    ("unconfined pod", lv(B), {"securityContext": {"appArmorProfile": {"type": "Unconfined"}},
                               "containers": [c("a")]}, None,
     ("forbidden AppArmor profile", 'pod must not set AppArmor profile type to "Unconfined"')),
    ("unconfined container", lv(B), {"securityContext": {"appArmorProfile": {"type": "RuntimeDefault"}},
                                     "containers": [c("foo", {"appArmorProfile": {"type": "Unconfined"}})]}, None,
     ("forbidden AppArmor profile", 'container "foo" must not set AppArmor profile type to "Unconfined"')),
    ("unconfined init container", lv(B), {"containers": [c("foo")], "initContainers": [
        c("bar", {"appArmorProfile": {"type": "Unconfined"}})]}, None,
     ("forbidden AppArmor profile", 'container "bar" must not set AppArmor profile type to "Unconfined"')),
    ("apparmor annotations", lv(B), {"containers": [c("a")]}, {"annotations": {
        "container.apparmor.security.beta.kubernetes.io/": "bogus",
        "container.apparmor.security.beta.kubernetes.io/a": "",
        "container.apparmor.security.beta.kubernetes.io/b": "runtime/default",
        "container.apparmor.security.beta.kubernetes.io/c": "localhost/",
        "container.apparmor.security.beta.kubernetes.io/d": "localhost/foo",
        "container.apparmor.security.beta.kubernetes.io/e": "unconfined",
        "container.apparmor.security.beta.kubernetes.io/f": "unknown", "env": "prod"}},
     ("forbidden AppArmor profiles", ("annotations must not set AppArmor profile type to "
      '"container.apparmor.security.beta.kubernetes.io/="bogus"", '
      '"container.apparmor.security.beta.kubernetes.io/e="unconfined"", '
      '"container.apparmor.security.beta.kubernetes.io/f="unknown""'))),
    ("apparmor localhost", lv(B), {"containers": [c("a", {"appArmorProfile": {"type": "Localhost",
                                                                               "localhostProfile": "p"}})]},
     None, None),
    # --- SELinux (check_seLinuxOptions_test.go)
    ("selinux pod and containers", lv(B), {
        "securityContext": {"seLinuxOptions": {"type": "foo", "user": "bar", "role": "baz"}},
        "containers": [c("a", {"seLinuxOptions": {"type": "container_t"}}),
                       c("b", {"seLinuxOptions": {"type": "container_init_t"}}),
                       c("c", {"seLinuxOptions": {"type": "container_kvm_t"}}),
                       c("d", {"seLinuxOptions": {"type": "bar"}}), c("e", {"seLinuxOptions": {"user": "bar"}}),
                       c("f", {"seLinuxOptions": {"role": "baz"}})]}, None,
     ("seLinuxOptions", ('pod and containers "d", "e", "f" set forbidden securityContext.seLinuxOptions: '
                        'types "bar", "foo"; user may not be set; role may not be set'))),
    ("selinux containers", lv(B), {"securityContext": {"seLinuxOptions": {}}, "containers": [
        c("a", {"seLinuxOptions": {"type": "container_t"}}), c("d", {"seLinuxOptions": {"type": "bar"}}),
        c("e", {"seLinuxOptions": {"user": "bar"}}), c("f", {"seLinuxOptions": {"role": "baz"}})]}, None,
     ("seLinuxOptions", ('containers "d", "e", "f" set forbidden securityContext.seLinuxOptions: type "bar"; '
                        "user may not be set; role may not be set"))),
    ("selinux user only", lv(B), {"containers": [c("e", {"seLinuxOptions": {"user": "u"}})]}, None,
     ("seLinuxOptions", 'container "e" set forbidden securityContext.seLinuxOptions: user may not be set')),
    ("container_engine_t from v1.31", lv(B, 31), {"containers": [c("a", {"seLinuxOptions": {
        "type": "container_engine_t"}})]}, None, None),
    ("container_engine_t before v1.31", lv(B, 30), {"containers": [c("a", {"seLinuxOptions": {
        "type": "container_engine_t"}})]}, None,
     ("seLinuxOptions", 'container "a" set forbidden securityContext.seLinuxOptions: type "container_engine_t"')),
    # --- /proc mount
    ("procMount", lv(B), {"containers": [c("a", {"procMount": "Unmasked"}), c("b", {"procMount": "Default"})]},
     None, ("procMount", 'container "a" must not set securityContext.procMount to "Unmasked"')),
    ("procMount in a user namespace, baseline", lv(B), {"hostUsers": False, "containers": [
        c("a", {"procMount": "Unmasked"})]}, None, None),
    ("procMount in a user namespace, baseline v1.34", lv(B, 34), {"hostUsers": False, "containers": [
        c("a", {"procMount": "Unmasked"})]}, None,
     ("procMount", 'container "a" must not set securityContext.procMount to "Unmasked"')),
    ("procMount in a user namespace, restricted", lv(R), {"hostUsers": False, "containers": [
        restricted_container("a", procMount="Unmasked")]}, None,
     ("procMount", 'container "a" must not set securityContext.procMount to "Unmasked"')),
    # --- seccomp, baseline
    ("seccomp unconfined pod", lv(B), {"securityContext": {"seccompProfile": {"type": "Unconfined"}},
                                       "containers": [c("a")]}, None,
     ("seccompProfile", 'pod must not set securityContext.seccompProfile.type to "Unconfined"')),
    ("seccomp unconfined pod and containers", lv(B), {
        "securityContext": {"seccompProfile": {"type": "Unconfined"}},
        "containers": [c("a", {"seccompProfile": {"type": "Unconfined"}}),
                       c("b", {"seccompProfile": {"type": "RuntimeDefault"}}),
                       c("c", {"seccompProfile": {"type": "Bogus"}})]}, None,
     ("seccompProfile", ('pod and containers "a", "c" must not set securityContext.seccompProfile.type to '
                        '"Bogus", "Unconfined"'))),
    ("seccomp unset is baseline", lv(B), {"containers": [c("a")]}, None, None),
    ("seccomp annotations before v1.19", lv(B, 18), {"containers": [c("a")]}, {"annotations": {
        "seccomp.security.alpha.kubernetes.io/pod": "unconfined",
        "container.seccomp.security.alpha.kubernetes.io/a": "runtime/default"}},
     ("seccompProfile", 'forbidden annotation seccomp.security.alpha.kubernetes.io/pod="unconfined"')),
    # --- sysctls (check_sysctls_test.go) and their version history
    ("forbidden sysctls", lv(B), {"securityContext": {"sysctls": [{"name": "a"}, {"name": "b"}]},
                                  "containers": [c("a")]}, None, ("forbidden sysctls", "a, b")),
    ("safe sysctls", lv(B), {"securityContext": {"sysctls": [
        {"name": n} for n in ("kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies",
                              "net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start",
                              "net.ipv4.ip_local_reserved_ports", "net.ipv4.tcp_keepalive_time",
                              "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
                              "net.ipv4.tcp_keepalive_probes", "net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem",
                              "net.ipv4.tcp_slow_start_after_idle", "net.ipv4.tcp_notsent_lowat")]},
        "containers": [c("a")]}, None, None),
    ("tcp_rmem before v1.32", lv(B, 31), {"securityContext": {"sysctls": [{"name": "net.ipv4.tcp_rmem"}]},
                                         "containers": [c("a")]}, None, ("forbidden sysctls", "net.ipv4.tcp_rmem")),
    ("ip_local_reserved_ports before v1.27", lv(B, 26), {"securityContext": {"sysctls": [
        {"name": "net.ipv4.ip_local_reserved_ports"}]}, "containers": [c("a")]}, None,
     ("forbidden sysctls", "net.ipv4.ip_local_reserved_ports")),
    ("tcp_notsent_lowat before v1.37", lv(B, 36), {"securityContext": {"sysctls": [
        {"name": "net.ipv4.tcp_notsent_lowat"}]}, "containers": [c("a")]}, None,
     ("forbidden sysctls", "net.ipv4.tcp_notsent_lowat")),
    # --- Windows hostProcess
    ("hostProcess", lv(B), {"securityContext": {"windowsOptions": {"hostProcess": True}},
                            "containers": [c("a", {"windowsOptions": {"hostProcess": True}}),
                                           c("b", {"windowsOptions": {"hostProcess": False}})]}, None,
     ("hostProcess", 'pod and container "a" must not set securityContext.windowsOptions.hostProcess=true')),
    # --- probe and lifecycle hosts (v1.34+)
    ("probe and lifecycle hosts", lv(B), {"containers": [
        c("b", readinessProbe={"tcpSocket": {"port": 80, "host": "example.com"}},
          lifecycle={"preStop": {"httpGet": {"port": 80, "host": "1.1.1.1"}}}),
        c("a", livenessProbe={"httpGet": {"port": 80, "host": "1.1.1.1"}}),
        c("ok", startupProbe={"httpGet": {"port": 80}})]}, None,
     ("probe or lifecycle host", 'containers "a", "b" use probe or lifecycle hosts "1.1.1.1", "example.com"')),
    ("one probe host", lv(B), {"containers": [c("a", lifecycle={"postStart": {"tcpSocket": {
        "port": 80, "host": "h"}}})]}, None, ("probe or lifecycle host", 'container "a" uses probe or lifecycle host "h"')),
    ("probe hosts before v1.34", lv(B, 33), {"containers": [
        c("a", livenessProbe={"httpGet": {"port": 80, "host": "1.1.1.1"}})]}, None, None),
    # --- restricted: allowPrivilegeEscalation (check_allowPrivilegeEscalation_test.go)
    ("allowPrivilegeEscalation", lv(R), {"securityContext": {"runAsNonRoot": True, "seccompProfile": {
        "type": "RuntimeDefault"}}, "containers": [
        c("a", {"capabilities": {"drop": ["ALL"]}}),
        c("b", {"capabilities": {"drop": ["ALL"]}, "allowPrivilegeEscalation": None}),
        c("c", {"capabilities": {"drop": ["ALL"]}, "allowPrivilegeEscalation": True}),
        c("d", {"capabilities": {"drop": ["ALL"]}, "allowPrivilegeEscalation": False})]}, None,
     ("allowPrivilegeEscalation != false",
      'containers "a", "b", "c" must set securityContext.allowPrivilegeEscalation=false')),
    # --- restricted: capabilities (check_capabilities_restricted_test.go)
    ("unrestricted capabilities", lv(R), {"securityContext": {"runAsNonRoot": True, "seccompProfile": {
        "type": "RuntimeDefault"}}, "containers": [
        c("a", {"allowPrivilegeEscalation": False}),
        c("b", {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"],
                                                                    "add": ["NET_BIND_SERVICE", "FOO"]}}),
        c("c", {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["CHOWN"], "add": ["BAR", "FOO"]}}),
        c("d", {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"],
                                                                    "add": ["NET_BIND_SERVICE"]}})]}, None,
     ("unrestricted capabilities", ('containers "a", "c" must set securityContext.capabilities.drop=["ALL"]; '
                                   'containers "b", "c" must not include "BAR", "FOO" in '
                                   "securityContext.capabilities.add"))),
    # --- restricted: runAsNonRoot (check_runAsNonRoot_test.go)
    ("runAsNonRoot unset", lv(R), {"securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                                   "containers": [restricted_container("a", runAsNonRoot=None),
                                                  restricted_container("b", runAsNonRoot=None)]}, None,
     ("runAsNonRoot != true", 'pod or containers "a", "b" must set securityContext.runAsNonRoot=true')),
    ("runAsNonRoot false on the pod", lv(R), {"securityContext": {"runAsNonRoot": False}, "containers": [
        restricted_container("a"), restricted_container("b", runAsNonRoot=False)]}, None,
     ("runAsNonRoot != true", 'pod and container "b" must not set securityContext.runAsNonRoot=false')),
    ("runAsNonRoot from the pod", lv(R), {"securityContext": {"runAsNonRoot": True}, "containers": [
        restricted_container("a", runAsNonRoot=None)]}, None, None),
    ("runAsNonRoot in a user namespace", lv(R), {"hostUsers": False, "containers": [
        restricted_container("a", runAsNonRoot=False)]}, None, None),
    ("runAsNonRoot in a user namespace before v1.35", lv(R, 34), {"hostUsers": False, "containers": [
        restricted_container("a", runAsNonRoot=False)]}, None,
     ("runAsNonRoot != true", 'container "a" must not set securityContext.runAsNonRoot=false')),
    # --- restricted: runAsUser (check_runAsUser_test.go)
    ("runAsUser=0", lv(R), {"securityContext": {"runAsUser": 0}, "containers": [
        restricted_container("a", runAsUser=1000), restricted_container("b", runAsUser=0),
        restricted_container("c", runAsUser=0)]}, None,
     ("runAsUser=0", 'pod and containers "b", "c" must not set runAsUser=0')),
    ("runAsUser=0 before v1.23", lv(R, 22), {"containers": [restricted_container("a", runAsUser=0)]}, None, None),
    ("runAsUser=0 in a user namespace", lv(R), {"hostUsers": False, "containers": [
        restricted_container("a", runAsUser=0)]}, None, None),
    # --- restricted: seccomp (check_seccompProfile_restricted_test.go)
    ("seccomp not set", lv(R), {"securityContext": {"runAsNonRoot": True}, "containers": [
        restricted_container("a", seccompProfile=None), restricted_container("b", seccompProfile=None)]}, None,
     ("seccompProfile", ('pod or containers "a", "b" must set securityContext.seccompProfile.type to '
                        '"RuntimeDefault" or "Localhost"'))),
    ("seccomp explicitly bad", lv(R), {"containers": [
        restricted_container("a", seccompProfile={"type": "Unconfined"}),
        restricted_container("b", seccompProfile=None)]}, None,
     ("seccompProfile", 'container "a" must not set securityContext.seccompProfile.type to "Unconfined"')),
    ("seccomp from the pod", lv(R), {"securityContext": {"seccompProfile": {"type": "Localhost",
                                                                            "localhostProfile": "p"}},
                                     "containers": [restricted_container("a", seccompProfile=None)]}, None, None),
    # --- restricted: volume types (check_restrictedVolumes_test.go)
    ("restricted volume types", lv(R), {"containers": [restricted_container("a")], "volumes": [
        {"name": "a", "hostPath": {"path": "/a"}}, {"name": "b", "emptyDir": {}}, {"name": "c", "nfs": {}},
        {"name": "d"}, {"name": "e", "configMap": {"name": "x"}}, {"name": "f", "image": {"reference": "i"}},
        {"name": "g", "projected": {"sources": []}}]}, None,
     ("restricted volume types", 'volumes "a", "c", "d" use restricted volume types "hostPath", "nfs", "unknown"')),
    ("one restricted volume", lv(R), {"containers": [restricted_container("a")], "volumes": [
        {"name": "x", "gitRepo": {"repository": "r"}}]}, None,
     ("restricted volume types", 'volume "x" uses restricted volume type "gitRepo"')),
    # --- kube's restricted base fixture passes everywhere
    ("restricted base", lv(R), {"securityContext": {"runAsNonRoot": True, "seccompProfile": {
        "type": "RuntimeDefault"}}, "containers": [c("a", {"allowPrivilegeEscalation": False, "capabilities": {
            "drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}})], "initContainers": [c("i", {
                "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}})]}, None, None),
]


def _spec(case_spec: Obj) -> Obj:
    """A case's spec without the None placeholders (unset fields, as they are on the wire)."""
    def clean(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items() if v is not None}
        if isinstance(x, list):
            return [clean(v) for v in x]
        return x
    return clean(case_spec)  # type: ignore[no-any-return]


@pytest.mark.parametrize(("level", "spec", "meta", "want"), [case[1:] for case in CASES],
                         ids=[case[0] for case in CASES])
def test_check(level: ps.LevelVersion, spec: Obj, meta: Obj | None, want: tuple[str, str] | None) -> None:
    assert only(level, _spec(spec), meta) == want


def test_windows_pods_are_exempt_from_linux_only_restricted_checks_from_v1_25() -> None:
    spec = {"os": {"name": "windows"}, "securityContext": {"runAsNonRoot": True}, "containers": [c("a")]}
    assert violations(lv(R), spec) == []
    assert violations(lv(R, 24), spec) == [
        ("allowPrivilegeEscalation != false", 'container "a" must set securityContext.allowPrivilegeEscalation=false'),
        ("unrestricted capabilities", 'container "a" must set securityContext.capabilities.drop=["ALL"]'),
        ("seccompProfile", ('pod or container "a" must set securityContext.seccompProfile.type to "RuntimeDefault" '
                           'or "Localhost"'))]


def test_checks_newer_than_the_version_do_not_run() -> None:
    spec = {"containers": [c("a")]}
    # v1.7: before allowPrivilegeEscalation (1.8), runAsUser (1.23), capabilities (1.22), seccomp (1.19)
    assert violations(lv(R, 7), spec) == [
        ("runAsNonRoot != true", 'pod or container "a" must set securityContext.runAsNonRoot=true')]
    assert [r for r, _ in violations(lv(R, 22), spec)] == [
        "allowPrivilegeEscalation != false", "unrestricted capabilities", "runAsNonRoot != true", "seccompProfile"]


def test_a_privileged_pod_under_restricted_reports_baseline_then_restricted_in_id_order() -> None:
    spec = {"securityContext": {}, "hostNetwork": True, "containers": [
        c("nginx", {"privileged": True}, ports=[{"containerPort": 80, "hostPort": 8080}])],
            "volumes": [{"name": "host", "hostPath": {"path": "/"}}]}
    found = ps.evaluate_pod(lv(R), {}, spec)
    assert ps.forbidden_reason(found) == (
        "host namespaces, hostPort, privileged, allowPrivilegeEscalation != false, unrestricted capabilities, "
        "restricted volume types, runAsNonRoot != true, seccompProfile")
    assert ps.forbidden_detail(found) == (
        'host namespaces (hostNetwork=true), hostPort (container "nginx" uses hostPort 8080), '
        'privileged (container "nginx" must not set securityContext.privileged=true), '
        'allowPrivilegeEscalation != false (container "nginx" must set securityContext.allowPrivilegeEscalation=false), '
        'unrestricted capabilities (container "nginx" must set securityContext.capabilities.drop=["ALL"]), '
        'restricted volume types (volume "host" uses restricted volume type "hostPath"), '
        'runAsNonRoot != true (pod or container "nginx" must set securityContext.runAsNonRoot=true), '
        'seccompProfile (pod or container "nginx" must set securityContext.seccompProfile.type to "RuntimeDefault" '
        'or "Localhost")')
    # baseline: hostPath volumes is its own check there
    assert ps.forbidden_reason(ps.evaluate_pod(lv(B), {}, spec)) == \
        "host namespaces, hostPath volumes, hostPort, privileged"
    assert ps.evaluate_pod(lv(P), {}, spec) == []


def test_restricted_overrides_the_baseline_checks_it_covers() -> None:
    # Unconfined seccomp and a non-default capability are reported once, by the restricted checks
    spec = {"securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "Unconfined"}}, "containers": [
        c("a", {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"], "add": ["SYS_ADMIN"]}})]}
    assert [r for r, _ in violations(lv(R), spec)] == ["unrestricted capabilities", "seccompProfile"]
    assert [r for r, _ in violations(lv(B), spec)] == ["non-default capabilities", "seccompProfile"]


def test_versions_newer_than_any_check_are_latest() -> None:
    assert ps.Version(99).effective() == ps.MAX_VERSION == ps.Version().effective()
    assert str(lv(R)) == "restricted:latest" and str(lv(B, 30)) == "baseline:v1.30"


# --------------------------------------------------------------------------- labels


def test_policy_from_labels_falls_back_to_the_defaults() -> None:
    defaults = ps.Policy(enforce=lv(B), audit=lv(R, 30))
    assert ps.policy_to_evaluate(None, defaults) == (defaults, [])
    p, errs = ps.policy_to_evaluate({"pod-security.kubernetes.io/enforce": "restricted",
                                     "pod-security.kubernetes.io/enforce-version": "v1.29",
                                     "pod-security.kubernetes.io/warn": "baseline", "other": "x"}, defaults)
    assert errs == []
    assert p == ps.Policy(enforce=lv(R, 29), audit=lv(R, 30), warn=lv(B))


def test_invalid_labels_fail_closed_for_enforce_and_open_for_audit_and_warn() -> None:
    p, errs = ps.policy_to_evaluate({"pod-security.kubernetes.io/enforce": "strict",
                                     "pod-security.kubernetes.io/audit": "nope",
                                     "pod-security.kubernetes.io/warn-version": "1.25",
                                     "pod-security.kubernetes.io/audit-version": "v1.01"}, ps.Policy())
    assert p.enforce == lv(R) and p.audit.level is P and p.warn == lv(P)
    assert [str(e) for e in errs] == [
        ('metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: "strict": must be one of privileged, '
        "baseline, restricted"),
        ('metadata.labels[pod-security.kubernetes.io/audit]: Invalid value: "nope": must be one of privileged, '
        "baseline, restricted"),
        ('metadata.labels[pod-security.kubernetes.io/audit-version]: Invalid value: "v1.01": must be "latest" or '
        '"v1.x"'),
        'metadata.labels[pod-security.kubernetes.io/warn-version]: Invalid value: "1.25": must be "latest" or "v1.x"']


@pytest.mark.parametrize(("value", "want"), [("latest", None), ("v1.0", 0), ("v1.25", 25), ("v1.999", 999)])
def test_parse_version(value: str, want: int | None) -> None:
    assert ps.parse_version(value) == (ps.Version(want), "")


@pytest.mark.parametrize("value", ["", "v2.0", "1.25", "v1.", "v1.025", "v1.x", "Latest"])
def test_parse_version_refuses(value: str) -> None:
    assert ps.parse_version(value) == (ps.LATEST, 'must be "latest" or "v1.x"')


# --------------------------------------------------------------------------- updates and templates


def pod(**spec: Any) -> Obj:
    return {"metadata": {"name": "p", "labels": {"a": "b"}, "annotations": {}},
            "spec": {"containers": [c("a")], **spec}}


def test_only_updates_of_what_the_checks_read_are_significant() -> None:
    old = pod()
    relabelled = pod()
    relabelled["metadata"]["labels"] = {"a": "c"}
    assert not ps.is_significant_pod_update(relabelled, old)
    new_image = pod(containers=[{**c("a"), "image": "busybox:2"}])
    assert ps.is_significant_pod_update(new_image, old)
    debug = pod(ephemeralContainers=[c("debugger", {"privileged": True})])
    assert ps.is_significant_pod_update(debug, old)
    assert not ps.is_significant_pod_update(debug, debug)
    annotated = pod()
    annotated["metadata"]["annotations"] = {"seccomp.security.alpha.kubernetes.io/pod": "unconfined"}
    assert ps.is_significant_pod_update(annotated, old)
    assert ps.is_significant_pod_update(pod(initContainers=[c("i")]), old)


def test_pod_templates_of_workloads() -> None:
    tmpl = {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [c("a")]}}
    assert ps.pod_spec_of("apps", "Deployment", {"spec": {"template": tmpl}}) == (tmpl["metadata"], tmpl["spec"])
    assert ps.pod_spec_of("batch", "CronJob", {"spec": {"jobTemplate": {"spec": {"template": tmpl}}}}) == \
        (tmpl["metadata"], tmpl["spec"])
    assert ps.pod_spec_of("", "PodTemplate", {"template": tmpl}) == (tmpl["metadata"], tmpl["spec"])
    assert ps.pod_spec_of("", "ReplicationController", {"spec": {}}) is None
    assert ps.pod_spec_of("", "ConfigMap", {"data": {}}) is None
    assert ps.has_pod_template("apps", "StatefulSet") and not ps.has_pod_template("", "Pod")


# --------------------------------------------------------------------------- configuration


def test_configuration_defaults_are_privileged_latest_and_nothing_exempt() -> None:
    conf, errs = ps.parse_configuration({"apiVersion": "pod-security.admission.config.k8s.io/v1",
                                         "kind": "PodSecurityConfiguration"})
    assert errs == [] and conf == ps.Configuration()


def test_configuration() -> None:
    conf, errs = ps.parse_configuration({
        "apiVersion": "pod-security.admission.config.k8s.io/v1", "kind": "PodSecurityConfiguration",
        "defaults": {"enforce": "baseline", "enforce-version": "v1.30", "warn": "restricted"},
        "exemptions": {"usernames": ["ci"], "runtimeClasses": ["kata"], "namespaces": ["kube-system"]}})
    assert errs == []
    assert conf.defaults == ps.Policy(enforce=lv(B, 30), warn=lv(R))
    assert (conf.exempt_usernames, conf.exempt_runtime_classes, conf.exempt_namespaces) == (
        {"ci"}, {"kata"}, {"kube-system"})


def test_configuration_errors() -> None:
    _, errs = ps.parse_configuration({
        "apiVersion": "pod-security.admission.config.k8s.io/v2", "kind": "PodSecurityConfiguration",
        "defaults": {"enforce": "strict", "audit-version": "1.2", "warm": "baseline"},
        "exemptions": {"usernames": ["", "ci", "ci"], "namespaces": ["Kube_System"], "runtimeClasses": ["a", "a"]}})
    assert [str(e) for e in errs] == [
        ('apiVersion: Unsupported value: "pod-security.admission.config.k8s.io/v2": supported values: '
        '"pod-security.admission.config.k8s.io/v1", "pod-security.admission.config.k8s.io/v1beta1", '
        '"pod-security.admission.config.k8s.io/v1alpha1"'),
        "defaults.warm: Forbidden: unknown field",
        'defaults.enforce: Invalid value: "strict": must be one of privileged, baseline, restricted',
        'defaults.audit-version: Invalid value: "1.2": must be "latest" or "v1.x"',
        ('exemptions.namespaces[0]: Invalid value: "Kube_System": a lowercase RFC 1123 label must consist of lower '
        "case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. "
        "'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"),
        'exemptions.runtimeClasses[1]: Duplicate value: "a"',
        "exemptions.usernames[0]: Required value",
        'exemptions.usernames[2]: Duplicate value: "ci"']
    assert errs[-1].type is FieldErrorType.DUPLICATE


def test_a_pod_view_runs_each_check_once_across_levels() -> None:
    spec = {"hostPID": True, "containers": [c("a", {"privileged": True})]}
    view = ps.PodView({}, spec)
    assert ps.evaluate(lv(B), view) == ps.evaluate_pod(lv(B), {}, spec)
    baseline_results = dict(view.results)
    assert ps.evaluate(lv(R), view) == ps.evaluate_pod(lv(R), {}, spec)
    # the baseline checks restricted keeps were not run again: their results are the same objects
    assert all(view.results[f] is v for f, v in baseline_results.items())
    assert len(view.results) > len(baseline_results)


def test_configuration_values_of_the_wrong_type() -> None:
    _, errs = ps.parse_configuration({
        "apiVersion": "pod-security.admission.config.k8s.io/v1", "kind": "PodSecurityConfiguration",
        "defaults": {"enforce": ["baseline"], "warn-version": 1.25}, "exemptions": {"namespaces": "kube-system"}})
    assert [str(e) for e in errs] == [
        'defaults.enforce: Invalid value: ["baseline"]: must be one of privileged, baseline, restricted',
        'defaults.warn-version: Invalid value: 1.25: must be "latest" or "v1.x"',
        'exemptions.namespaces: Invalid value: "kube-system": must be a list of strings']
