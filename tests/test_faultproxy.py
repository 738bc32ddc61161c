"""The fault-injecting proxy, driven by the real minio client against the real moto server."""

from __future__ import annotations

import http.client
import io
import random
import socket
import time
from collections.abc import Callable, Iterator
from functools import partial

import pytest
import urllib3
from conftest import ACCESS_KEY, SECRET_KEY, S3Server, wait_until
from faultproxy import FaultProxy
from minio import Minio
from minio.error import S3Error

MiB = 1024 * 1024
pytestmark = pytest.mark.timeout(20)


@pytest.fixture
def proxy(s3: S3Server) -> Iterator[FaultProxy]:
    with FaultProxy("127.0.0.1", s3.port) as p:
        yield p


def client(proxy: FaultProxy, timeout: float = 3.0) -> Minio:
    """A minio client through the proxy: no retries, short timeouts, so faults show."""
    http_client = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=timeout, read=timeout), retries=False, maxsize=4
    )
    return Minio(
        proxy.netloc,
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        secure=False,
        region="us-east-1",
        http_client=http_client,
    )


def payload(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def put(mc: Minio, bucket: str, key: str, data: bytes, part_size: int = 0) -> None:
    mc.put_object(bucket, key, io.BytesIO(data), len(data), part_size=part_size)


def get(mc: Minio, bucket: str, key: str) -> bytes:
    resp = mc.get_object(bucket, key)
    try:
        return bytes(resp.read())
    finally:
        resp.close()
        resp.release_conn()


def succeeds(action: Callable[[], object]) -> bool:
    try:
        action()
    except (S3Error, urllib3.exceptions.HTTPError, OSError):
        return False
    return True


def causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and everything it wraps (urllib3 keeps the OS error in args)."""
    seen: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo:
        e = todo.pop()
        if e in seen:
            continue
        seen.append(e)
        todo += [x for x in (e.__cause__, e.__context__) if x is not None]
        todo += [a for a in e.args if isinstance(a, BaseException)]
    return seen


def raw_connect(proxy: FaultProxy) -> socket.socket:
    return socket.create_connection(("127.0.0.1", proxy.port), timeout=5)


def test_passthrough_single_and_multipart_byte_exact(
    proxy: FaultProxy, s3: S3Server, bucket: str
) -> None:
    mc = client(proxy, timeout=10)
    small, big = payload(100_000, 1), payload(12 * MiB, 2)
    put(mc, bucket, "small.bin", small)
    put(mc, bucket, "big.bin", big, part_size=5 * MiB)

    assert get(mc, bucket, "small.bin") == small
    assert get(mc, bucket, "big.bin") == big
    assert s3.read(bucket, "big.bin") == big  # what the server stored, read without the proxy
    stats = proxy.stats()
    # single PUT; multipart = POST initiate + 3 part PUTs + POST complete; two GETs
    assert dict(stats.by_method) == {"PUT": 4, "POST": 2, "GET": 2}
    assert (stats.requests, stats.forwarded, stats.faults) == (8, 8, 0)
    assert stats.bytes_up > len(small) + len(big)
    assert stats.bytes_down > len(small) + len(big)
    assert stats.connections < stats.requests  # keep-alive through the proxy


def test_counts_requests_per_method_and_records_them(
    proxy: FaultProxy, bucket: str
) -> None:
    mc = client(proxy)
    put(mc, bucket, "a", b"alpha")
    mc.stat_object(bucket, "a")
    assert [o.object_name for o in mc.list_objects(bucket)] == ["a"]
    mc.remove_object(bucket, "a")

    stats = proxy.stats()
    assert dict(stats.by_method) == {"PUT": 1, "HEAD": 1, "GET": 1, "DELETE": 1}
    assert (stats.requests, stats.faults) == (4, 0)
    records = proxy.requests()
    assert [(r.method, r.fault, r.status) for r in records] == [
        ("PUT", None, 200),
        ("HEAD", None, 200),
        ("GET", None, 200),
        ("DELETE", None, 204),
    ]
    assert records[0].target == f"/{bucket}/a"

    proxy.reset_stats()
    assert proxy.stats().requests == 0
    assert proxy.requests() == []


def test_refuse_stops_listening_and_resets_open_connections(
    proxy: FaultProxy, s3: S3Server, bucket: str
) -> None:
    idle = raw_connect(proxy)
    idle.sendall(f"HEAD /{bucket} HTTP/1.1\r\nHost: {proxy.netloc}\r\n\r\n".encode())
    assert idle.recv(65536).startswith(b"HTTP/1.1 ")  # a kept-alive connection

    proxy.down()
    with pytest.raises(ConnectionRefusedError):
        raw_connect(proxy)
    with pytest.raises(ConnectionResetError):
        idle.recv(1)
    idle.close()
    mc = client(proxy)
    with pytest.raises(urllib3.exceptions.HTTPError) as info:
        put(mc, bucket, "k", b"data")
    assert any(isinstance(e, ConnectionRefusedError) for e in causes(info.value))
    assert proxy.stats().requests == 1  # only the HEAD before going down

    proxy.up()
    put(mc, bucket, "k", b"data")
    assert s3.read(bucket, "k") == b"data"


def test_down_for_comes_back_by_itself(proxy: FaultProxy, s3: S3Server, bucket: str) -> None:
    mc = client(proxy)
    started = time.monotonic()
    proxy.down_for(1.0)
    assert not succeeds(lambda: put(mc, bucket, "k", b"after outage"))
    wait_until(lambda: succeeds(lambda: put(mc, bucket, "k", b"after outage")), 10, 0.05)
    elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 5
    assert s3.read(bucket, "k") == b"after outage"


def test_reset_mid_request(proxy: FaultProxy, s3: S3Server, bucket: str) -> None:
    proxy.set_mode("reset")
    with raw_connect(proxy) as sock:
        sock.sendall(
            f"PUT /{bucket}/raw HTTP/1.1\r\nHost: {proxy.netloc}\r\n"
            "Content-Length: 1000\r\n\r\n".encode() + b"x" * 100
        )
        with pytest.raises(ConnectionResetError):  # RST, not an orderly FIN
            sock.recv(1)

    mc = client(proxy)
    with pytest.raises(urllib3.exceptions.HTTPError) as info:
        put(mc, bucket, "big", payload(2 * MiB))
    assert any(isinstance(e, (ConnectionResetError, BrokenPipeError)) for e in causes(info.value))
    assert s3.keys(bucket) == []  # nothing reached the server
    stats = proxy.stats()
    assert (stats.requests, stats.faults, dict(stats.by_fault)) == (2, 2, {"reset": 2})


def test_close_without_answer(proxy: FaultProxy, bucket: str) -> None:
    proxy.fail_next(1, "close")
    with raw_connect(proxy) as sock:
        sock.sendall(f"GET /{bucket} HTTP/1.1\r\nHost: {proxy.netloc}\r\n\r\n".encode())
        assert sock.recv(1) == b""  # orderly close, no response
    mc = client(proxy)
    assert mc.bucket_exists(bucket)  # the next request passes
    assert dict(proxy.stats().by_fault) == {"close": 1}


def test_503_window(proxy: FaultProxy, s3: S3Server, bucket: str) -> None:
    mc = client(proxy)
    put(mc, bucket, "k", b"old")
    data = payload(300_000)
    started = time.monotonic()
    proxy.fail_for(1.0, status=503)
    with pytest.raises(S3Error) as info:
        put(mc, bucket, "k", data)
    assert (info.value.code, info.value.response.status) == ("SlowDown", 503)
    with pytest.raises(S3Error) as info:
        get(mc, bucket, "k")
    assert info.value.code == "SlowDown"

    wait_until(lambda: succeeds(lambda: put(mc, bucket, "k", data)), 10, 0.05)
    assert 0.9 <= time.monotonic() - started < 5
    assert s3.read(bucket, "k") == data
    stats = proxy.stats()
    assert stats.faults >= 2
    assert dict(stats.by_fault) == {"503": stats.faults}
    assert stats.forwarded == 2  # the first and the last PUT
    assert stats.requests == stats.faults + stats.forwarded


def test_fail_next_500_keeps_connection_usable(
    proxy: FaultProxy, s3: S3Server, bucket: str
) -> None:
    mc = client(proxy)
    proxy.fail_next(2, status=500)
    for _ in range(2):
        with pytest.raises(S3Error) as info:
            put(mc, bucket, "k", payload(200_000))
        assert info.value.code == "InternalError"
    put(mc, bucket, "k", b"third time")
    assert s3.read(bucket, "k") == b"third time"
    stats = proxy.stats()
    assert (stats.faults, stats.forwarded, stats.connections) == (2, 1, 1)


def test_error_discards_request_body_on_keep_alive(
    proxy: FaultProxy, s3: S3Server, bucket: str
) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    try:
        proxy.fail_next(1)
        conn.request("PUT", f"/{bucket}/a", body=b"x" * 200_000)
        resp = conn.getresponse()
        assert resp.status == 503
        assert b"<Code>SlowDown</Code>" in resp.read()
        conn.request("PUT", f"/{bucket}/a", body=b"y" * 200_000)
        assert conn.getresponse().read() == b""

        proxy.fail_next(1, status=500)
        chunks = [b"z" * 70_000, b"w" * 5]
        conn.request("PUT", f"/{bucket}/c", body=iter(chunks), encode_chunked=True)
        resp = conn.getresponse()
        assert (resp.status, resp.getheader("Connection")) == (500, "keep-alive")
        assert b"<Code>InternalError</Code>" in resp.read()
        conn.request("PUT", f"/{bucket}/c", body=iter(chunks), encode_chunked=True)
        resp = conn.getresponse()
        assert resp.status == 200
        resp.read()
    finally:
        conn.close()
    assert s3.read(bucket, "a") == b"y" * 200_000
    assert s3.read(bucket, "c") == b"".join(chunks)
    stats = proxy.stats()
    assert (stats.connections, stats.requests, stats.faults) == (1, 4, 2)


def test_expect_continue_error_closes_connection(proxy: FaultProxy, bucket: str) -> None:
    proxy.fail_next(1)
    with raw_connect(proxy) as sock:
        sock.sendall(
            f"PUT /{bucket}/e HTTP/1.1\r\nHost: {proxy.netloc}\r\nExpect: 100-continue\r\n"
            "Content-Length: 10\r\n\r\n".encode()
        )
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 503 Slow Down\r\n")
    assert b"\r\nConnection: close\r\n" in reply


def test_fail_fraction_is_deterministic_with_seed(proxy: FaultProxy, bucket: str) -> None:
    mc = client(proxy)

    def run(seed: int) -> list[bool]:
        proxy.reset_stats()
        proxy.fail_fraction(0.3, status=503, seed=seed)
        failed = [not succeeds(partial(put, mc, bucket, f"k{i}", b"v")) for i in range(40)]
        proxy.heal()
        return failed

    rng = random.Random(1)
    expected = [rng.random() < 0.3 for _ in range(40)]
    first = run(1)
    assert first == expected
    assert proxy.stats().faults == sum(expected)
    assert 0 < sum(expected) < 40
    assert run(1) == first
    other = random.Random(2)
    assert run(2) == [other.random() < 0.3 for _ in range(40)] != first


def test_stall_makes_client_time_out(proxy: FaultProxy, bucket: str) -> None:
    mc = client(proxy, timeout=1.0)
    proxy.set_mode("stall")
    started = time.monotonic()
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        mc.bucket_exists(bucket)
    assert 0.9 <= time.monotonic() - started < 5
    assert dict(proxy.stats().by_fault) == {"stall": 1}

    proxy.heal()
    assert mc.bucket_exists(bucket)


def test_corrupt_inverts_the_first_body_byte_of_the_next_request_with_a_body(
    proxy: FaultProxy, s3: S3Server, bucket: str
) -> None:
    """moto checks no body digest: what reaches it is the damaged body, stored as sent."""
    mc = client(proxy)
    data = payload(100_000, seed=3)
    proxy.set_mode("corrupt", count=1)
    assert mc.bucket_exists(bucket)  # no body: passed through, not counted
    put(mc, bucket, "c", data)
    put(mc, bucket, "d", data)
    assert s3.read(bucket, "c") == bytes([data[0] ^ 0xFF]) + data[1:]
    assert s3.read(bucket, "d") == data
    assert [(r.method, r.fault) for r in proxy.requests()] == [
        ("HEAD", None),
        ("PUT", "corrupt"),
        ("PUT", None),
    ]


def test_throttle_upload_and_download(proxy: FaultProxy, s3: S3Server, bucket: str) -> None:
    mc = client(proxy, timeout=15)
    data = payload(400_000)
    rate = 200_000  # bytes/s: 2 s for the payload

    proxy.throttle(rate, direction="upload")
    started = time.monotonic()
    put(mc, bucket, "t", data)
    assert 0.9 * len(data) / rate <= time.monotonic() - started < 15
    assert s3.read(bucket, "t") == data

    proxy.throttle(rate, direction="download")
    started = time.monotonic()
    assert get(mc, bucket, "t") == data
    assert 0.9 * len(data) / rate <= time.monotonic() - started < 15


def test_control_calls_reject_bad_arguments(proxy: FaultProxy) -> None:
    with pytest.raises(ValueError):
        proxy.set_mode("refuse", count=1)
    with pytest.raises(ValueError):
        proxy.set_mode(503, seconds=1, count=1)
    with pytest.raises(ValueError):
        proxy.fail_fraction(1.5)
    with pytest.raises(ValueError):
        proxy.fail_next(1, status=200)
    with pytest.raises(ValueError):
        proxy.throttle(0)
    assert proxy.endpoint == f"http://127.0.0.1:{proxy.port}"
