"""TLS on k8py's sockets: TLS 1.2 or newer only, on the server side (the API server's and the
node agent's contexts) and the client side; a serving certificate replaced on disk is presented
to new handshakes without a restart, while open connections keep theirs."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import os
import ssl
import warnings
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from k8py import pki as pki_mod
from k8py.client.config import ClientConfig
from k8py.config import ServerConfig
from k8py.tlsfiles import tls_server_context


async def _serve(ctx: ssl.SSLContext) -> tuple[asyncio.Server, int]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(100):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=ctx)
    return server, server.sockets[0].getsockname()[1]


@pytest.fixture
async def pki(config: ServerConfig) -> pki_mod.PKI:
    return pki_mod.ensure_pki(config)


@pytest.fixture
async def api_server(pki: pki_mod.PKI) -> AsyncIterator[int]:
    server, port = await _serve(pki_mod.server_ssl_context(pki))
    yield port
    server.close()
    await server.wait_closed()


def _only(ctx: ssl.SSLContext, version: ssl.TLSVersion) -> None:
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # that is the point: TLS 1.1
        ctx.minimum_version = ctx.maximum_version = version


def _old_client(version: ssl.TLSVersion, ca: str) -> ssl.SSLContext:
    """A client that speaks only ``version`` (OpenSSL's security level 0 lets it offer TLS 1.1)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    _only(ctx, version)
    ctx.load_verify_locations(cafile=ca)
    ctx.check_hostname = False
    return ctx


async def _handshake(port: int, ctx: ssl.SSLContext) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        writer.write(b"ping")
        assert await reader.readexactly(4) == b"ping"
        return bytes(der)
    finally:
        writer.close()


REFUSED = (ssl.SSLError, ConnectionError)  # asyncio's server side may reset rather than send its alert


@pytest.fixture
async def permissive(pki: pki_mod.PKI) -> AsyncIterator[int]:
    """A server that would speak TLS 1.1: shows the TLS 1.1 client below can make a handshake."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _only(ctx, ssl.TLSVersion.TLSv1_1)
    ctx.load_cert_chain(pki.serving_cert, pki.serving_key)
    server, port = await _serve(ctx)
    yield port
    server.close()
    await server.wait_closed()


async def test_api_server_refuses_tls_1_1_and_accepts_1_2_and_1_3(pki: pki_mod.PKI, api_server: int,
                                                                  permissive: int) -> None:
    tls11 = _old_client(ssl.TLSVersion.TLSv1_1, pki.ca_cert)
    assert await _handshake(permissive, tls11)  # the client can speak TLS 1.1 ...
    with pytest.raises(REFUSED):
        await _handshake(api_server, tls11)  # ... and the API server refuses it
    assert await _handshake(api_server, _old_client(ssl.TLSVersion.TLSv1_2, pki.ca_cert))
    assert await _handshake(api_server, _old_client(ssl.TLSVersion.TLSv1_3, pki.ca_cert))


async def test_kubelet_api_context_refuses_tls_1_1(pki: pki_mod.PKI, tmp_path: Path) -> None:
    cert, key = pki_mod.issue_kubelet_serving_certificate(pki, "node-a", ("127.0.0.1",))
    (tmp_path / "k.crt").write_bytes(cert)
    (tmp_path / "k.key").write_bytes(key)
    ctx = tls_server_context(str(tmp_path / "k.crt"), str(tmp_path / "k.key"), pki.ca_cert, ssl.CERT_REQUIRED)
    server, port = await _serve(ctx)
    try:
        for version, ok in ((ssl.TLSVersion.TLSv1_1, False), (ssl.TLSVersion.TLSv1_2, True)):
            client = _old_client(version, pki.ca_cert)
            client.load_cert_chain(pki.admin_cert, pki.admin_key)
            if ok:
                assert await _handshake(port, client)
            else:
                with pytest.raises(REFUSED):
                    await _handshake(port, client)
    finally:
        server.close()
        await server.wait_closed()


async def test_k8py_client_refuses_a_tls_1_1_server(pki: pki_mod.PKI, permissive: int) -> None:
    ctx = ClientConfig(server=f"https://127.0.0.1:{permissive}", ca_file=pki.ca_cert).ssl_context()
    assert ctx is not None and ctx.minimum_version >= ssl.TLSVersion.TLSv1_2
    with pytest.raises(REFUSED):
        await _handshake(permissive, ctx)


async def test_a_replaced_serving_certificate_is_presented_to_new_handshakes(pki: pki_mod.PKI,
                                                                              api_server: int) -> None:
    client = ssl.create_default_context(cafile=pki.ca_cert)
    client.check_hostname = False
    before = await _handshake(api_server, client)
    reader, writer = await asyncio.open_connection("127.0.0.1", api_server, ssl=client)  # stays open
    pki_mod.rotate(str(Path(pki.tls_dir).parent), [pki_mod.API_SERVER])
    rotated = Path(pki.serving_cert).read_bytes()
    want = x509.load_pem_x509_certificate(rotated).public_bytes(serialization.Encoding.DER)
    assert want != before
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while (got := await _handshake(api_server, client)) != want:
        assert got == before, "neither the old nor the new certificate"
        assert loop.time() < deadline, "the new serving certificate was not presented within 10s"
        await asyncio.sleep(0.2)
    # the connection made before keeps working
    writer.write(b"pong")
    assert await reader.readexactly(4) == b"pong"
    writer.close()


def test_tls_san_names_and_addresses_are_in_the_serving_certificate_and_a_change_reissues_it(
        config: ServerConfig) -> None:
    cfg = dataclasses.replace(config, tls_sans=("lb.example.com", "*.k8s.example.com", "192.0.2.10", "2001:db8::1"))
    p = pki_mod.ensure_pki(cfg)
    first = Path(p.serving_cert).read_bytes()
    cert = x509.load_pem_x509_certificate(first)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"lb.example.com", "*.k8s.example.com"} <= set(san.get_values_for_type(x509.DNSName))
    assert {"192.0.2.10", "2001:db8::1"} <= {str(i) for i in san.get_values_for_type(x509.IPAddress)}
    admin = Path(p.admin_cert).read_bytes()
    pki_mod.ensure_pki(cfg)
    assert Path(p.serving_cert).read_bytes() == first  # same names: reused
    # a name taken away reissues it too (the old certificate would still answer for it)
    pki_mod.ensure_pki(dataclasses.replace(cfg, tls_sans=("lb.example.com",)))
    second = x509.load_pem_x509_certificate(Path(p.serving_cert).read_bytes())
    san = second.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "*.k8s.example.com" not in san.get_values_for_type(x509.DNSName)
    assert "192.0.2.10" not in {str(i) for i in san.get_values_for_type(x509.IPAddress)}
    assert Path(p.admin_cert).read_bytes() == admin


@pytest.mark.parametrize("bad", ["bad_name", "-lead.example.com", "a..b", "x" * 64 + ".com", ""])
def test_bad_tls_san_is_refused_with_its_value(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid --tls-san"):
        pki_mod.parse_san(bad)


def test_short_lived_certificates_are_renewed_in_their_last_quarter(config: ServerConfig) -> None:
    cfg = dataclasses.replace(config, cert_validity_seconds=60.0)
    p = pki_mod.ensure_pki(cfg)
    cert = x509.load_pem_x509_certificate(Path(p.serving_cert).read_bytes())
    life = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert dt.timedelta(seconds=65) <= life <= dt.timedelta(seconds=67)  # 60 s + backdated a tenth of it
    renew = pki_mod.renewal_time(cert)
    assert abs((cert.not_valid_after_utc - renew) - life / 4) < dt.timedelta(seconds=1)
    assert not pki_mod.renewal_due(cert)
    assert pki_mod.renewal_due(cert, renew + dt.timedelta(seconds=1))
    # a year-long one: 90 days before it expires, as k3s
    other = dataclasses.replace(config, data_dir=config.data_dir + "-year")
    year = x509.load_pem_x509_certificate(Path(pki_mod.ensure_pki(other).admin_cert).read_bytes())
    assert year.not_valid_after_utc - pki_mod.renewal_time(year) == dt.timedelta(days=90)


def test_rotate_reissues_with_the_same_names_and_skips_what_is_not_there_only_when_asked_for_all(
        config: ServerConfig) -> None:
    p = pki_mod.ensure_pki(config)
    data = config.data_dir
    with pytest.raises(FileNotFoundError, match="no kubelet certificate"):
        pki_mod.rotate(data, [pki_mod.KUBELET])  # no embedded agent yet
    written = pki_mod.rotate(data, list(pki_mod.SERVICES), missing_ok=True)
    assert [os.path.basename(w) for w in written] == ["serving.crt", "admin.crt"]  # no kubelet client one either
    cert, key = pki_mod.issue_kubelet_serving_certificate(p, "node-a", ("127.0.0.1",), ("node-a",))
    os.makedirs(os.path.join(data, "agent", "tls"))
    Path(data, "agent/tls/kubelet.crt").write_bytes(cert)
    Path(data, "agent/tls/kubelet.key").write_bytes(key)
    old = x509.load_pem_x509_certificate(cert)
    pki_mod.rotate(data, [pki_mod.KUBELET])
    new = x509.load_pem_x509_certificate(Path(data, "agent/tls/kubelet.crt").read_bytes())
    assert new.serial_number != old.serial_number and new.subject == old.subject
    assert new.extensions.get_extension_for_class(x509.SubjectAlternativeName).value == \
        old.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    with pytest.raises(ValueError, match="unknown service"):
        pki_mod.rotate(data, ["etcd"])
