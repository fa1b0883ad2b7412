"""gRPC probes against a real gRPC health server (grpcio's, on loopback)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import pytest

from k8py.kubelet.grpcprobe import decode_response, encode_request
from k8py.kubelet.prober import HTTPProber, run_probe
from k8py.kubelet.runtime.fake import FakeRuntime

grpc = pytest.importorskip("grpc")
health = pytest.importorskip("grpc_health.v1.health")
health_pb2 = pytest.importorskip("grpc_health.v1.health_pb2")
health_pb2_grpc = pytest.importorskip("grpc_health.v1.health_pb2_grpc")


@pytest.fixture(scope="module")
def health_server() -> Iterator[tuple[int, Any]]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    servicer.set("ready", health_pb2.HealthCheckResponse.SERVING)
    servicer.set("sick", health_pb2.HealthCheckResponse.NOT_SERVING)
    server.start()
    yield port, servicer
    server.stop(None)


@pytest.fixture(scope="module")
def bare_server() -> Iterator[int]:
    """A gRPC server without the health service."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield port
    server.stop(None)


async def probe(port: int, service: str | None = None, timeout: int = 1) -> tuple[str, str]:
    g: dict[str, Any] = {"port": port}
    if service is not None:
        g["service"] = service
    http = HTTPProber()
    try:
        out = await run_probe({"grpc": g, "timeoutSeconds": timeout}, {"name": "c"}, "c1", "127.0.0.1", FakeRuntime(),
                              http)
    finally:
        await http.close()
    return out.result, out.output


def test_messages_round_trip_with_protobufs_own() -> None:
    raw = encode_request("my-service")
    assert raw[0] == 0 and int.from_bytes(raw[1:5], "big") == len(raw) - 5
    assert health_pb2.HealthCheckRequest.FromString(raw[5:]).service == "my-service"
    assert encode_request("") == b"\x00\x00\x00\x00\x00"
    resp = health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.NOT_SERVING).SerializeToString()
    assert decode_response(b"\x00" + len(resp).to_bytes(4, "big") + resp) == 2
    assert decode_response(b"\x00\x00\x00\x00\x00") == 0


async def test_serving_and_not_serving(health_server: tuple[int, Any]) -> None:
    port, _ = health_server
    assert await probe(port) == ("success", "service healthy")
    assert await probe(port, "ready") == ("success", "service healthy")
    assert await probe(port, "sick") == ("failure", 'service unhealthy (responded with "NOT_SERVING")')
    # grpcio's servicer answers an unknown service with NOT_FOUND and no message
    assert await probe(port, "nope") == (
        "failure", "error: health rpc probe failed: rpc error: code = NotFound desc = ")


async def test_a_status_change_is_seen_on_the_next_probe(health_server: tuple[int, Any]) -> None:
    port, servicer = health_server
    servicer.set("flip", health_pb2.HealthCheckResponse.SERVING)
    assert (await probe(port, "flip"))[0] == "success"
    servicer.set("flip", health_pb2.HealthCheckResponse.NOT_SERVING)
    assert await probe(port, "flip") == ("failure", 'service unhealthy (responded with "NOT_SERVING")')


async def test_a_server_without_the_health_service(bare_server: int) -> None:
    result, output = await probe(bare_server)
    assert result == "failure"
    assert output.startswith("error: this server does not implement the grpc health protocol "
                             "(grpc.health.v1.Health): "), output


async def test_nothing_listening_times_out_as_kubelet_says() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    assert await probe(port) == (
        "failure", f'timeout: failed to connect service "127.0.0.1:{port}" within 1s: context deadline exceeded')


async def test_a_server_that_never_answers_times_out() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)  # accepts the connection (the backlog) but never speaks HTTP/2
        assert await probe(s.getsockname()[1]) == ("failure", "timeout: health rpc did not complete within 1s")


@pytest.mark.parametrize(("msg", "why"), [(b"\x08", "truncated varint"), (b"\x0b", "field 1: unsupported wire type 3"),
                                          (b"\x12\x09ab", "field 2: length 9 runs past the end of the message")])
def test_a_response_that_does_not_parse_is_an_error(msg: bytes, why: str) -> None:
    with pytest.raises(ValueError, match=f"^grpc: failed to unmarshal the received message: {why}$"):
        decode_response(b"\x00" + len(msg).to_bytes(4, "big") + msg)
    # fields it does not know are skipped; the last status wins, as protobuf's
    ok = b"\x12\x02ab" + b"\x08\x01" + b"\x1d\x00\x00\x00\x00" + b"\x08\x03"
    assert decode_response(b"\x00" + len(ok).to_bytes(4, "big") + ok) == 3
