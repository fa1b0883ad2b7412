"""What authenticating a service-account token costs the API server, in-process: the JWT's
signature (RS256, or ES256 with --es256), its claims, and the store reads of the objects it is
bound to (``ServiceAccountTokens.authenticate`` over the in-memory store), next to a static
token's lookup; and what issuing one costs (TokenRequest's signing).

Usage:  python bench/satoken_bench.py [--n 2000] [--es256] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from k8py import satoken
from k8py.apiserver import server as srv
from k8py.apiserver.authn import Authenticator, append_token
from k8py.config import ServerConfig
from k8py.storage.memory import MemoryStore


async def run(n: int, es256: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = ServerConfig(data_dir=tmp)
        if es256:
            key = Path(tmp) / "es.key"
            key.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
            cfg = ServerConfig(data_dir=tmp, service_account_signing_key_file=str(key))
        store = MemoryStore()
        await store.start()
        authn = Authenticator(cfg)
        cp = srv.build(cfg, store, authenticator=authn)
        await cp.bootstrap()
        reg = cp.registry
        sa_kind, pod_kind = reg.by_resource("", "v1", "serviceaccounts"), reg.by_resource("", "v1", "pods")
        assert sa_kind and pod_kind
        sa = await cp.objects.create(sa_kind, {"apiVersion": "v1", "kind": "ServiceAccount",
                                               "metadata": {"name": "robot", "namespace": "default", "uid": "u1"}})
        pod = await cp.objects.create(pod_kind, {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default", "uid": "p1"},
            "spec": {"serviceAccountName": "robot", "containers": [{"name": "c", "image": "i"}]}})
        sat = cp.api.sa_tokens
        keys = await sat.keyring()
        now = int(time.time())

        def token(bound: bool) -> str:
            return satoken.sign(satoken.bound_claims(
                issuer=sat.issuer, audiences=list(sat.api_audiences), now=now, expiration_seconds=3600, sa=sa,
                jti="j", pod=pod if bound else None), keys)

        plain, bound = token(False), token(True)
        static = append_token(cfg.token_file, "alice", "u", ("dev",))
        out: dict[str, float] = {}
        for name, tok in (("plain token (SA read)", plain), ("pod-bound token (SA + pod read)", bound)):
            assert await sat.authenticate(tok) is not None
            t = time.perf_counter()
            for _ in range(n):
                await sat.authenticate(tok)
            out[name] = (time.perf_counter() - t) / n * 1e6
        authn.tokens.lookup(static)
        t = time.perf_counter()
        for _ in range(n):
            authn.tokens.lookup(static)
        out["static token file lookup"] = (time.perf_counter() - t) / n * 1e6
        t = time.perf_counter()
        for _ in range(max(n // 10, 1)):
            token(True)
        out["signing one token"] = (time.perf_counter() - t) / max(n // 10, 1) * 1e6
        await store.close()
        return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--es256", action="store_true", help="sign with an ECDSA P-256 key instead of RSA 2048")
    ap.add_argument("--json", help="write results as JSON to this file")
    args = ap.parse_args()
    res: dict[str, Any] = asyncio.run(run(args.n, args.es256))
    for k, v in res.items():
        print(f"{k:40s} {v:8.1f} us")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
