"""The seed's anti-pattern checks (k8py.api.seedpolicy): pure, on objects as the API stores them."""

from __future__ import annotations

from typing import Any

import pytest

from k8py.api import seedpolicy as sp


def container(name: str = "app", image: str = "nginx:1.27", *, limits: dict[str, Any] | None = None,
              probes: bool = True, **extra: Any) -> dict[str, Any]:
    c: dict[str, Any] = {"name": name, "image": image,
                         "resources": {"limits": limits if limits is not None else {"cpu": "500m", "memory": "128Mi"}}}
    if probes:
        c["readinessProbe"] = {"httpGet": {"path": "/", "port": 80}}
        c["livenessProbe"] = {"tcpSocket": {"port": 80}}
    c.update(extra)
    return c


def deployment(*containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": list(containers), **spec}}}}


def pod(*containers: dict[str, Any], owned: bool = False, **spec: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "p", "namespace": "default"}
    if owned:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u",
                                    "controller": True}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": {"containers": list(containers), **spec}}


def checks(obj: dict[str, Any], policy: sp.Policy = sp.DEFAULT_POLICY) -> list[tuple[str, str]]:
    return [(f.check, f.field) for f in sp.check(obj, policy)]


def test_a_clean_deployment_has_no_findings() -> None:
    assert sp.check(deployment(container())) == []


def test_the_issue_example_nginx_latest_without_limits() -> None:
    found = sp.check(deployment(container("nginx", "nginx:latest", limits={}, probes=False)))
    assert [f.check for f in found] == ["latest-tag", "no-limits", "no-probes"]
    assert found[0].field == "spec.template.spec.containers[0].image"
    assert found[0].message == ('spec.template.spec.containers[0] (nginx): image "nginx:latest" uses the :latest '
                                "tag (pin a version or a digest)")
    assert found[1].field == "spec.template.spec.containers[0].resources.limits"
    assert found[1].message.startswith("spec.template.spec.containers[0] (nginx): no memory or CPU limit (set "
                                       "resources.limits.memory and resources.limits.cpu")
    assert found[2].message.startswith("spec.template.spec.containers[0] (nginx): no readinessProbe and no "
                                       "livenessProbe")


@pytest.mark.parametrize(("image", "latest"), [
    ("nginx", True),
    ("nginx:latest", True),
    ("docker.io/library/nginx", True),
    ("registry.local:5000/team/app", True),  # the port is the registry's, not a tag
    ("registry.local:5000/team/app:latest", True),
    ("registry.local:5000/team/app:v2", False),
    ("nginx:1.27", False),
    ("nginx@sha256:" + "a" * 64, False),  # pinned by digest
    ("nginx:latest@sha256:" + "b" * 64, False),  # the digest pins it, whatever the tag says
    ("localhost/app:Latest", False),  # tags are case-sensitive: kube pulls it IfNotPresent
    ("not a reference", False),  # unparseable: the runtime's to report, not this check's
])
def test_what_kube_treats_as_latest(image: str, latest: bool) -> None:
    found = [f for f in sp.check(deployment(container(image=image))) if f.check == "latest-tag"]
    assert bool(found) is latest, found
    if found:
        wording = "uses the :latest tag" if image.split("/")[-1].endswith(":latest") else "has no tag, so it means :latest"
        assert f'image "{image}" {wording}' in found[0].message


def test_missing_image_is_left_to_validation() -> None:
    assert checks(deployment(container(image=""))) == []


def test_limits_each_missing_resource_is_named() -> None:
    found = sp.check(deployment(container(limits={"memory": "1Gi"})))
    assert [(f.check, f.field) for f in found] == [("no-limits", "spec.template.spec.containers[0].resources.limits")]
    assert "no CPU limit (set resources.limits.cpu " in found[0].message
    found = sp.check(deployment(container(limits={"cpu": "1"})))
    assert "no memory limit (set resources.limits.memory " in found[0].message
    # requests are not limits
    c = container(limits={})
    c["resources"]["requests"] = {"cpu": "1", "memory": "1Gi"}
    assert [f.check for f in sp.check(deployment(c))] == ["no-limits"]


def test_pod_level_limits_cover_the_containers() -> None:
    obj = deployment(container(limits={}), resources={"limits": {"cpu": "2", "memory": "2Gi"}})
    assert checks(obj) == []
    obj = deployment(container(limits={}), resources={"limits": {"cpu": "2"}})
    assert checks(obj) == [("no-limits", "spec.template.spec.containers[0].resources.limits")]


def test_init_containers_need_limits_but_not_probes() -> None:
    init = container("init", probes=False, limits={})
    obj = deployment(container(), initContainers=[init])
    assert checks(obj) == [("no-limits", "spec.template.spec.initContainers[0].resources.limits")]


def test_probes_one_missing() -> None:
    c = container()
    del c["livenessProbe"]
    found = sp.check(deployment(c))
    assert [(f.check, f.field) for f in found] == [("no-probes", "spec.template.spec.containers[0].livenessProbe")]
    assert "no livenessProbe (" in found[0].message and "readinessProbe" not in found[0].message


def test_run_to_completion_pods_are_not_asked_for_probes() -> None:
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
           "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [container(probes=False)]}}}}
    assert checks(job) == []
    cron = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c"},
            "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "OnFailure", "containers": [container(image="busybox", probes=False)]}}}}}}
    assert checks(cron) == [("latest-tag", "spec.jobTemplate.spec.template.spec.containers[0].image")]


@pytest.mark.parametrize(("api_version", "kind", "path"), [
    ("apps/v1", "ReplicaSet", "spec.template.spec"),
    ("apps/v1", "StatefulSet", "spec.template.spec"),
    ("apps/v1", "DaemonSet", "spec.template.spec"),
    ("v1", "ReplicationController", "spec.template.spec"),
    ("v1", "PodTemplate", "template.spec"),
])
def test_every_workload_kind(api_version: str, kind: str, path: str) -> None:
    spec = {"containers": [container(image="busybox:latest")]}
    obj: dict[str, Any] = {"apiVersion": api_version, "kind": kind, "metadata": {"name": "x"}}
    if kind == "PodTemplate":
        obj["template"] = {"spec": spec}
    else:
        obj["spec"] = {"template": {"spec": spec}}
    assert checks(obj) == [("latest-tag", f"{path}.containers[0].image")]


def test_other_kinds_and_kinds_without_a_template() -> None:
    assert sp.check({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}}) == []
    assert sp.check({"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "r"},
                     "spec": {"replicas": 1}}) == []
    # the same kind name in another group is not a workload
    assert sp.check({"apiVersion": "example.com/v1", "kind": "Deployment",
                     "spec": {"template": {"spec": {"containers": [container(image="x")]}}}}) == []


def test_bare_pod() -> None:
    found = sp.check(pod(container()))
    assert [(f.check, f.field) for f in found] == [("bare-pod", "metadata.ownerReferences")]
    assert found[0].message.startswith('metadata.ownerReferences: pod "p" is not managed by a controller')
    assert checks(pod(container(), owned=True)) == []
    # an owner that is not the controller does not manage it
    p = pod(container())
    p["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "ConfigMap", "name": "c", "uid": "u"}]
    assert checks(p) == [("bare-pod", "metadata.ownerReferences")]


def test_a_bare_pod_that_runs_to_completion_needs_no_probes() -> None:
    assert checks(pod(container(probes=False), restartPolicy="Never")) == [("bare-pod", "metadata.ownerReferences")]


@pytest.mark.parametrize(("name", "value", "secret"), [
    ("DB_PASSWORD", "hunter2", True),
    ("dbPassword", "hunter2", True),
    ("GITHUB_TOKEN", "ghp_abc", True),
    ("JWT_SECRET", "s3cr3t", True),
    ("API_KEY", "k-9f8e7d", True),
    ("SSH_KEY", "k", False),  # "key" alone says too little
    ("APIKEY", "k-9f8e7d", True),
    ("STRIPE_API_KEY", "sk_live", True),
    ("AWS_SECRET_ACCESS_KEY", "abc", True),
    ("AWS_ACCESS_KEY_ID", "AKIA", False),  # an identifier
    ("DB_PASSWORD_FILE", "/run/secrets/db", False),  # where the secret is: the good practice
    ("TOKEN_URL", "https://auth/token", False),
    ("SECRET_NAME", "db-creds", False),
    ("ENABLE_TOKEN_AUTH", "true", False),  # a switch
    ("DB_PASSWORD", "$(PASSWORD_FROM_SECRET)", False),  # a reference to another variable
    ("DB_PASSWORD", "", False),
    ("LOG_LEVEL", "debug", False),
])
def test_plain_env_secrets(name: str, value: str, secret: bool) -> None:
    c = container(env=[{"name": "A", "value": "1"}, {"name": name, "value": value}])
    found = sp.check(deployment(c))
    assert [(f.check, f.field) for f in found] == (
        [("plain-env-secret", "spec.template.spec.containers[0].env[1].value")] if secret else [])
    if secret:
        assert found[0].message == (f"spec.template.spec.containers[0] (app): env {name} is set from a plain value "
                                    "(keep secrets in a Secret and use valueFrom.secretKeyRef)")
        assert value not in found[0].message  # never echo the secret


def test_env_from_a_secret_is_fine() -> None:
    c = container(env=[{"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "pw"}}}])
    assert checks(deployment(c)) == []


def test_policy_checks_off_and_extra_words() -> None:
    obj = deployment(container("nginx", "nginx:latest", limits={}, probes=False,
                               env=[{"name": "MY_PIN", "value": "1234"}]))
    policy, errs = sp.parse_policy({"checks": "*,-no-probes,-no-limits", "secretEnvNames": "pin"})
    assert errs == []
    assert checks(obj, policy) == [("latest-tag", "spec.template.spec.containers[0].image"),
                                   ("plain-env-secret", "spec.template.spec.containers[0].env[0].value")]
    only, errs = sp.parse_policy({"checks": "no-probes"})
    assert errs == [] and only.checks == frozenset({"no-probes"})
    assert checks(obj, only) == [("no-probes", "spec.template.spec.containers[0].readinessProbe")]
    minus, _ = sp.parse_policy({"checks": "-bare-pod"})
    assert minus.checks == frozenset(sp.CHECKS) - {"bare-pod"}


def test_parse_policy_defaults_and_modes() -> None:
    assert sp.parse_policy(None) == (sp.DEFAULT_POLICY, [])
    assert sp.parse_policy({}) == (sp.DEFAULT_POLICY, [])
    assert sp.DEFAULT_POLICY.mode == "warn" and sp.DEFAULT_POLICY.exempt_namespaces == {"kube-system"}
    p, errs = sp.parse_policy({"mode": "enforce", "exemptNamespaces": "kube-system, legacy"})
    assert errs == [] and p.mode == "enforce" and p.exempt_namespaces == {"kube-system", "legacy"}
    p, errs = sp.parse_policy({"exemptNamespaces": ""})  # the list replaces the default
    assert errs == [] and p.exempt_namespaces == frozenset()


def test_parse_policy_reports_each_wrong_key_and_keeps_its_default() -> None:
    p, errs = sp.parse_policy({"mode": "enforcing", "checks": "*,-bogus", "colour": "blue",
                               "exemptNamespaces": "kube-system,Not_A_Namespace", "secretEnvNames": "pin,--"})
    assert p == sp.DEFAULT_POLICY
    assert [str(e) for e in errs] == [
        ('data[colour]: Unsupported value: "colour": supported values: "checks", "exemptNamespaces", "mode", '
        '"secretEnvNames"'),
        'data[mode]: Unsupported value: "enforcing": supported values: "enforce", "off", "warn"',
        ('data[checks]: Invalid value: "*,-bogus": unknown check "-bogus" (known: latest-tag, no-limits, no-probes, '
        "bare-pod, plain-env-secret; * for all, -id to turn one off)"),
        'data[secretEnvNames]: Invalid value: "pin,--": each name must contain a letter or digit',
        ('data[exemptNamespaces]: Invalid value: "kube-system,Not_A_Namespace": not a namespace name: '
        "Not_A_Namespace"),
    ]
    # the right keys still apply
    p, errs = sp.parse_policy({"mode": "off", "checks": "nope"})
    assert p.mode == "off" and p.checks == sp.DEFAULT_POLICY.checks and len(errs) == 1


def test_namespace_label_errors() -> None:
    assert sp.namespace_label_errors(None) == []
    assert sp.namespace_label_errors({"other": "x"}) == []
    assert all(sp.namespace_label_errors({sp.LABEL: m}) == [] for m in sp.MODES)
    assert [str(e) for e in sp.namespace_label_errors({sp.LABEL: "enforcing"})] == [
        'metadata.labels[k8py.io/policy]: Unsupported value: "enforcing": supported values: "enforce", "off", "warn"']


def test_a_job_without_a_restart_policy_is_still_not_asked_for_probes() -> None:
    # validation refuses it on the server; k8py lint reports that, not missing probes
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
           "spec": {"template": {"spec": {"containers": [container(probes=False)]}}}}
    assert checks(job) == []
    assert checks(pod(container(probes=False), owned=True)) == [
        ("no-probes", "spec.containers[0].readinessProbe")]
