"""Service-account tokens end to end, on a cluster whose agent runs real pods: the projected
token a pod gets authenticates as its service account and stops working once the pod is
deleted; `kubectl create token` output works with `kubectl --token`; a token is checked by an
independent verifier (PyJWT's PyJWKClient) against the JWKS the OIDC discovery document points
to, fetched over HTTPS.

Traffic goes only to the API server on loopback. Everything is removed at the end (the shared
real-node helper runs `k8py killall` and checks nothing is left)."""

from __future__ import annotations

import json
import ssl
import urllib.request
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from tests.e2e.conftest import Server, wait
from tests.helpers.realnode import IMAGE, SHARED_NODE, SharedRealNode, namespace_for

NODE = SHARED_NODE
ISSUER = "https://kubernetes.default.svc.cluster.local"
MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def cluster(shared_real_node: SharedRealNode, request: pytest.FixtureRequest) -> Iterator[Server]:
    with shared_real_node.module(request) as s:
        yield s


@pytest.fixture
def ns(cluster: Server, request: pytest.FixtureRequest) -> str:
    return namespace_for(cluster, request, "sa")


def as_token(s: Server, token: str, *args: str, check: bool = False) -> Any:
    """kubectl with only a bearer token (no client certificate: it would authenticate first)."""
    return s.kubectl("--kubeconfig", "/dev/null", "--server", f"https://127.0.0.1:{s.port}",
                     "--certificate-authority", str(s.data_dir / "tls" / "ca.crt"), "--token", token, *args,
                     check=check)


def whoami(s: Server, token: str) -> dict[str, Any] | None:
    p = as_token(s, token, "auth", "whoami", "-o", "json")
    if p.returncode != 0:
        assert "Unauthorized" in p.stderr, p.stderr
        return None
    return json.loads(p.stdout)["status"]["userInfo"]  # type: ignore[no-any-return]


def running(s: Server, ns: str, name: str) -> bool:
    p = s.kubectl("get", "pod", name, "-n", ns, "-o", "jsonpath={.status.phase}", check=False)
    return p.stdout == "Running"


def test_projected_token_authenticates_until_the_pod_is_gone(cluster: Server, ns: str) -> None:
    s = cluster
    s.kubectl("create", "serviceaccount", "robot", "-n", ns)
    s.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "app"},
        "spec": {"serviceAccountName": "robot", "terminationGracePeriodSeconds": 1,
                 "containers": [{"name": "main", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
                                 "command": ["sh", "-c", "sleep 3600"]}]}}))
    pod = s.kjson("get", "pod", "app", "-n", ns)
    (vol,) = [v for v in pod["spec"]["volumes"] if v["name"].startswith("kube-api-access-")]
    assert pod["spec"]["containers"][0]["volumeMounts"] == [{"name": vol["name"], "readOnly": True,
                                                            "mountPath": MOUNT}]
    wait(lambda: running(s, ns, "app"), 90, "the pod Running")
    token = s.kubectl("exec", "-n", ns, "app", "--", "cat", f"{MOUNT}/token").stdout
    assert s.kubectl("exec", "-n", ns, "app", "--", "cat", f"{MOUNT}/namespace").stdout == ns
    ca = s.kubectl("exec", "-n", ns, "app", "--", "cat", f"{MOUNT}/ca.crt").stdout
    assert ca == (s.data_dir / "tls" / "ca.crt").read_text()
    # the file is read-only in the container
    p = s.kubectl("exec", "-n", ns, "app", "--", "sh", "-c", f"echo x > {MOUNT}/token", check=False)
    assert p.returncode != 0
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["kubernetes.io"]["pod"] == {"name": "app", "uid": pod["metadata"]["uid"]}
    assert claims["kubernetes.io"]["node"]["name"] == NODE
    # kubelet's 3607 s token, extended by the API server to a year with a warning time
    assert claims["kubernetes.io"]["warnafter"] == claims["iat"] + 3607
    user = whoami(s, token)
    assert user is not None
    assert user["username"] == f"system:serviceaccount:{ns}:robot"
    assert user["groups"] == ["system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"]
    assert user["extra"]["authentication.kubernetes.io/pod-name"] == ["app"]
    assert user["extra"]["authentication.kubernetes.io/node-name"] == [NODE]
    # RBAC sees the account: nothing granted to it yet
    p = as_token(s, token, "get", "pods", "-n", ns)
    assert p.returncode != 0 and (f'User "system:serviceaccount:{ns}:robot" cannot list resource "pods"'
                                  in p.stderr), p.stderr
    s.kubectl("delete", "pod", "app", "-n", ns, "--wait=true", timeout=120)
    assert whoami(s, token) is None, "a token bound to a deleted pod must stop working"


def test_kubectl_create_token_and_an_external_verifier(cluster: Server, ns: str) -> None:
    s = cluster
    s.kubectl("create", "serviceaccount", "builder", "-n", ns)
    s.kubectl("create", "rolebinding", "builder-view", "-n", ns, "--clusterrole", "view",
              f"--serviceaccount={ns}:builder")
    token = s.kubectl("create", "token", "builder", "-n", ns, "--duration", "10m").stdout.strip()
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 600 and claims["aud"] == [ISSUER]
    user = whoami(s, token)
    assert user is not None and user["username"] == f"system:serviceaccount:{ns}:builder"
    wait(lambda: as_token(s, token, "get", "serviceaccounts", "-n", ns).returncode == 0, 10,
         "the view binding to reach the authorizer")
    # bad input: kube's bounds, in kube's words
    p = s.kubectl("create", "token", "builder", "-n", ns, "--duration", "1m", check=False)
    assert p.returncode != 0 and "may not specify a duration less than 10 minutes" in p.stderr, p.stderr
    p = s.kubectl("create", "token", "nobody", "-n", ns, check=False)
    assert p.returncode != 0 and 'serviceaccounts "nobody" not found' in p.stderr, p.stderr
    # a token for another audience does not work against the API
    other = s.kubectl("create", "token", "builder", "-n", ns, "--audience", "vault").stdout.strip()
    assert whoami(s, other) is None
    # an outside verifier: the discovery document, then the JWKS it names, over HTTPS
    ctx = ssl.create_default_context(cafile=str(s.data_dir / "tls" / "ca.crt"))
    auth = {"Authorization": f"Bearer {token}"}  # a service account may read them (issuer discovery role)
    req = urllib.request.Request(f"https://127.0.0.1:{s.port}/.well-known/openid-configuration", headers=auth)
    with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
        doc = json.loads(r.read())
    assert doc["issuer"] == ISSUER and doc["id_token_signing_alg_values_supported"] == ["RS256"]
    assert doc["jwks_uri"] == f"https://127.0.0.1:{s.port}/openid/v1/jwks"
    client = jwt.PyJWKClient(doc["jwks_uri"], headers=auth, ssl_context=ctx)
    key = client.get_signing_key_from_jwt(other)
    verified = jwt.decode(other, key.key, algorithms=doc["id_token_signing_alg_values_supported"],
                          audience="vault", issuer=doc["issuer"])
    assert verified["sub"] == f"system:serviceaccount:{ns}:builder"
    # a token bound to a Secret dies with it
    s.kubectl("create", "secret", "generic", "anchor", "-n", ns, "--from-literal=a=b")
    bound = s.kubectl("create", "token", "builder", "-n", ns, "--bound-object-kind", "Secret",
                      "--bound-object-name", "anchor").stdout.strip()
    assert whoami(s, bound) is not None
    s.kubectl("delete", "secret", "anchor", "-n", ns)
    assert whoami(s, bound) is None


def test_python_client_token_review_and_legacy_secrets(cluster: Server, ns: str) -> None:
    from kubernetes import client

    s = cluster
    s.kubectl("create", "serviceaccount", "worker", "-n", ns)
    with s.client() as api:
        core = client.CoreV1Api(api)
        tr = core.create_namespaced_service_account_token("worker", ns, client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=["svc-a", ISSUER], expiration_seconds=1200)))
        assert tr.spec.expiration_seconds == 1200 and tr.status.token and tr.status.expiration_timestamp
        token = tr.status.token
        # TokenReview from a manifest, as an outside service would check a token given to it
        review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                  "spec": {"token": token, "audiences": ["svc-a"]}}
        out = json.loads(s.kubectl("create", "-o", "json", "-f", "-", input=json.dumps(review)).stdout)
        assert out["status"]["authenticated"] is True and out["status"]["audiences"] == ["svc-a"]
        assert out["status"]["user"]["username"] == f"system:serviceaccount:{ns}:worker"
        review["spec"]["audiences"] = ["svc-b"]
        out = json.loads(s.kubectl("create", "-o", "json", "-f", "-", input=json.dumps(review)).stdout)
        assert "authenticated" not in out["status"] and "is invalid for the target audiences" in out["status"]["error"]
        # no token Secret is made unless asked for; asked for, it is filled and works
        assert [x.metadata.name for x in core.list_namespaced_secret(ns).items] == []
        core.create_namespaced_secret(ns, client.V1Secret(
            metadata=client.V1ObjectMeta(name="worker-token",
                                         annotations={"kubernetes.io/service-account.name": "worker"}),
            type="kubernetes.io/service-account-token"))

        def legacy_token() -> str:
            sec = core.read_namespaced_secret("worker-token", ns)
            return str((sec.data or {}).get("token") or "")

        encoded = wait(legacy_token, 30, "the tokens controller to fill the Secret")
        import base64

        legacy = base64.b64decode(encoded).decode()
        assert jwt.decode(legacy, options={"verify_signature": False})["iss"] == "kubernetes/serviceaccount"
        user = whoami(s, legacy)
        assert user is not None and user["username"] == f"system:serviceaccount:{ns}:worker"
        s.kubectl("delete", "serviceaccount", "worker", "-n", ns)
        assert whoami(s, legacy) is None
        assert whoami(s, token) is None
