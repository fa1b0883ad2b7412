"""The tokens controller fills the token Secrets someone asked for (token, ca.crt, namespace,
the account's uid), signs legacy tokens with the private key it is given, deletes token Secrets
whose account is gone, and creates nothing by itself."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from tests.helpers.cluster import InProcessCluster

from k8py import satoken
from k8py.client.errors import NotFoundError
from k8py.config import ServerConfig
from k8py.pki import ensure_pki

SA = ("v1", "ServiceAccount")
SECRET = ("v1", "Secret")


def secret(name: str, account: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
            "metadata": {"name": name, "annotations": {"kubernetes.io/service-account.name": account}}}


async def test_token_secrets_filled_on_request_and_removed_with_their_account(tmp_path: Path) -> None:
    key = str(tmp_path / "sa.key")
    satoken.ensure_signing_key(key)
    ca = ensure_pki(ServerConfig(data_dir=str(tmp_path / "data"))).ca_cert
    async with InProcessCluster(controllers=["serviceaccount-token"], manager_options={
            "service_account_private_key_file": key, "root_ca_file": ca}) as c:
        sa = await c.client.create(SA, {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "bot"}},
                                   "default")
        await c.client.create(SECRET, secret("bot-token", "bot"), "default")

        async def filled() -> Any:
            s = await c.client.get(SECRET, "bot-token", "default")
            return s if (s.get("data") or {}).get("token") else None

        s = await c.until(filled, what="the token secret filled")
        data = {k: base64.b64decode(v).decode() for k, v in s["data"].items()}
        assert data["namespace"] == "default" and data["ca.crt"] == Path(ca).read_text()
        assert s["metadata"]["annotations"]["kubernetes.io/service-account.uid"] == sa["metadata"]["uid"]
        token = data["token"]
        parsed = satoken.parse(token)
        assert parsed is not None
        claims = satoken.verify(parsed, satoken.load_keyring(key, generate=False))
        assert claims == {"iss": "kubernetes/serviceaccount", "sub": "system:serviceaccount:default:bot",
                          "kubernetes.io/serviceaccount/namespace": "default",
                          "kubernetes.io/serviceaccount/secret.name": "bot-token",
                          "kubernetes.io/serviceaccount/service-account.name": "bot",
                          "kubernetes.io/serviceaccount/service-account.uid": sa["metadata"]["uid"]}
        # nothing is made for an account on its own
        listed = await c.client.list(SECRET, "default")
        assert [x["metadata"]["name"] for x in listed["items"]] == ["bot-token"]
        # a token secret for an account that does not exist, and the account deleted: both removed
        await c.client.create(SECRET, secret("ghost-token", "ghost"), "default")
        await c.client.delete(SA, "bot", "default")

        async def gone(name: str) -> bool:
            try:
                await c.client.get(SECRET, name, "default")
            except NotFoundError:
                return True
            return False

        await c.until(lambda: gone("bot-token"), what="the deleted account's token secret removed")
        await c.until(lambda: gone("ghost-token"), what="the token secret of a missing account removed")
