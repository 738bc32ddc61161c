"""Retries, error classification and the S3 store's uploads (against the real moto server)."""

from __future__ import annotations

import base64
import hashlib
import os
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3
from conftest import ACCESS_KEY, SECRET_KEY, S3Server, wait_until
from faultproxy import FaultProxy
from minio.error import InvalidResponseError, S3Error, ServerError

from entrypoint.report import Reporter
from entrypoint.settings.store import Credentials, S3Endpoint, StoreConfig
from entrypoint.store import LocalStore, StoreError, s3_errors
from entrypoint.store import s3 as s3mod
from entrypoint.store.payload import Payload
from entrypoint.transfer.retry import Attempts, Backoff, DeadlinePassed, RetryPolicy
from entrypoint.transfer.uploader import Job, Uploader

MiB = 1024 * 1024
pytestmark = pytest.mark.timeout(60)


# -- backoff ---------------------------------------------------------------------------------------


def test_full_jitter_is_capped_per_attempt() -> None:
    policy = RetryPolicy(base=0.25, cap=5.0, network_cap=2.0, rng=random.Random(1))
    for failures in range(1, 40):
        ceiling = min(5.0, 0.25 * 2 ** (failures - 1))
        delays = [policy.delay(failures) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8  # jitter spans the whole range
    network = StoreError("connection problem", transient=True, code="Network")
    assert max(policy.delay(30, network) for _ in range(500)) <= 2.0
    slow = StoreError("SlowDown", transient=True, code="SlowDown")
    assert max(policy.delay(30, slow) for _ in range(500)) > 2.0


def quick(**kw: Any) -> Attempts:
    backoff = kw.pop("backoff", Backoff())
    return Attempts(backoff, RetryPolicy(base=0.001, cap=0.002), Reporter(quiet=True), **kw)


def test_transient_errors_are_retried_until_success() -> None:
    outcomes = [StoreError("503", transient=True, code="SlowDown")] * 3 + ["ok"]
    calls = []

    def request() -> str:
        calls.append(1)
        outcome = outcomes[len(calls) - 1]
        if isinstance(outcome, StoreError):
            raise outcome
        return outcome

    attempts = quick()
    assert attempts(request, "PUT k") == "ok"
    assert len(calls) == 4 and attempts.retries == 3


def test_permanent_error_is_not_retried() -> None:
    calls = []

    def request() -> None:
        calls.append(1)
        raise StoreError("AccessDenied", transient=False, code="AccessDenied", whole_store=True)

    with pytest.raises(StoreError, match="AccessDenied"):
        quick()(request, "PUT k")
    assert len(calls) == 1


def test_deadline_ends_retries_with_the_last_error() -> None:
    backoff = Backoff()
    calls = []

    def request() -> None:
        calls.append(1)
        if len(calls) == 3:
            backoff.set_deadline(0.0)  # long past
        raise StoreError("connection problem: refused", transient=True, code="Network")

    with pytest.raises(DeadlinePassed, match="refused"):
        quick(backoff=backoff)(request, "PUT k")
    assert len(calls) == 3


def test_whole_store_error_elsewhere_stops_other_retries() -> None:
    fatal = StoreError(
        "SignatureDoesNotMatch", transient=False, code="SignatureDoesNotMatch", whole_store=True
    )
    state: dict[str, StoreError | None] = {"fatal": None}
    calls = []

    def request() -> None:
        calls.append(1)
        state["fatal"] = fatal
        raise StoreError("503", transient=True)

    with pytest.raises(StoreError, match="SignatureDoesNotMatch"):
        quick(doomed=lambda: state["fatal"])(request, "PUT k")
    assert len(calls) == 1


def test_a_success_wakes_workers_sleeping_in_backoff() -> None:
    backoff = Backoff()
    sleeper = threading.Thread(target=backoff.sleep, args=(60.0,), daemon=True)
    sleeper.start()

    def woken() -> bool:
        backoff.failed()
        backoff.succeeded()
        return not sleeper.is_alive()

    wait_until(woken, timeout=10, what="the sleeper to wake")


# -- classification ------------------------------------------------------------------------------------


class FakeResponse:
    def __init__(self, status: int) -> None:
        self.status = status
        self.headers: dict[str, str] = {}


def s3_error(code: str, status: int) -> S3Error:
    return S3Error(FakeResponse(status), code, "message", "/b/k", "req", "host")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("error", "transient", "whole_store"),
    [
        (s3_error("SlowDown", 503), True, False),
        (s3_error("InternalError", 500), True, False),
        (s3_error("ServiceUnavailable", 503), True, False),
        (s3_error("RequestTimeout", 400), True, False),
        (s3_error("BadDigest", 400), True, False),
        (s3_error("SomethingNew", 502), True, False),
        (s3_error("TooManyRequests", 429), True, False),
        (s3_error("AccessDenied", 403), False, True),
        (s3_error("InvalidAccessKeyId", 403), False, True),
        (s3_error("SignatureDoesNotMatch", 403), False, True),
        (s3_error("NoSuchBucket", 404), False, True),
        (s3_error("InvalidBucketName", 400), False, True),
        (s3_error("KeyTooLongError", 400), False, False),
        (s3_error("SomethingElse", 400), False, False),
        (ServerError("server failed with HTTP status code 503", 503), True, False),
        (ServerError("server failed with HTTP status code 403", 403), False, True),
        (InvalidResponseError(502, "text/html", "<html>bad gateway</html>"), True, False),
        (InvalidResponseError(404, "text/html", "<html>not found</html>"), False, False),
        (urllib3.exceptions.NewConnectionError(None, "Connection refused"), True, False),  # type: ignore[arg-type]
        (urllib3.exceptions.NameResolutionError("h", None, OSError("no such host")), True, False),  # type: ignore[arg-type]
        (urllib3.exceptions.ReadTimeoutError(None, "/", "read timed out"), True, False),  # type: ignore[arg-type]
        (
            urllib3.exceptions.ProtocolError("Connection aborted", ConnectionResetError(104, "reset")),
            True,
            False,
        ),
        (ConnectionRefusedError(111, "refused"), True, False),
        (TimeoutError("timed out"), True, False),
        (urllib3.exceptions.SSLError("CERTIFICATE_VERIFY_FAILED"), False, True),
        (ValueError("invalid bucket name x"), False, True),
    ],
)
def test_classify(error: BaseException, transient: bool, whole_store: bool) -> None:
    result = s3_errors.classify(error)
    assert (result.transient, result.whole_store) == (transient, whole_store), str(result)
    assert "\n" not in str(result)
    if not transient and whole_store:
        assert "; " in str(result)  # the cause; the fix


def test_every_permanent_store_error_names_a_fix() -> None:
    for code, text in s3_errors.STORE_PERMANENT.items():
        assert "; " in text, code


# -- the S3 store against moto ---------------------------------------------------------------------


class RecordingPool(urllib3.PoolManager):
    """A real HTTP pool that records requests, and can damage or lose one on purpose."""

    def __init__(self, corrupt: int = 0, lose_complete: int = 0, **kw: Any) -> None:
        super().__init__(**kw)
        self.seen: list[tuple[str, str, dict[str, str], bytes]] = []
        self.corrupt = corrupt  # damage the body of this many data-carrying PUTs
        self.lose_complete = lose_complete  # lose the answer of this many CompleteMultipartUpload

    def urlopen(self, method: str, url: str, redirect: bool = True, **kw: Any) -> Any:  # type: ignore[override]
        body = kw.get("body")
        headers = dict(kw.get("headers") or {})
        self.seen.append((method, url, headers, body if isinstance(body, bytes) else b""))
        if method == "PUT" and isinstance(body, bytes) and body and self.corrupt:
            self.corrupt -= 1
            kw["body"] = bytes([body[0] ^ 0xFF]) + body[1:]  # sent as if the network flipped a bit
        response = super().urlopen(method, url, redirect=redirect, **kw)
        if method == "POST" and "uploadId=" in url and self.lose_complete:
            self.lose_complete -= 1
            raise urllib3.exceptions.ProtocolError("Connection aborted", ConnectionResetError(104, "reset"))
        return response


def store_config(s3: S3Server, bucket: str, create: bool = True, **kw: Any) -> StoreConfig:
    return StoreConfig(
        bucket=bucket,
        endpoint=S3Endpoint(kw.pop("netloc", s3.netloc), False),
        credentials=Credentials(ACCESS_KEY, SECRET_KEY),
        region="us-east-1",
        create_bucket=create,
        **kw,
    )


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    """5 MiB parts, and multipart from there on (no streaming single PUT): small multipart uploads."""
    monkeypatch.setattr(s3mod, "PART_SIZE", 5 * MiB)
    monkeypatch.setattr(s3mod, "STREAM_PUT_MAX", 5 * MiB)


def payload_of(tmp_path: Path, size: int, seed: int = 0) -> tuple[Payload, bytes]:
    data = random.Random(seed).randbytes(size)
    head, tail = data[:1000], data[1000:]
    (tmp_path / "tail").write_bytes(tail)
    return Payload.of(head, tmp_path / "tail"), data


def test_single_put_sends_content_md5_and_reports_sha256(s3: S3Server, bucket: str, tmp_path: Path) -> None:
    pool = RecordingPool()
    store = s3mod.S3Store(store_config(s3, bucket), http_client=pool)
    payload, data = payload_of(tmp_path, 300_000)
    stored = store.put("a/b.bin", payload, "application/octet-stream")
    assert s3.read(bucket, "a/b.bin") == data
    assert (stored.size, stored.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    puts = [(h, b) for m, _u, h, b in pool.seen if m == "PUT"]
    assert len(puts) == 1
    assert puts[0][0]["Content-MD5"] == base64.b64encode(hashlib.md5(data).digest()).decode()


def test_multipart_put_sends_md5_per_part_and_is_byte_exact(
    s3: S3Server, bucket: str, tmp_path: Path, small_parts: None
) -> None:
    pool = RecordingPool()
    store = s3mod.S3Store(store_config(s3, bucket), http_client=pool)
    payload, data = payload_of(tmp_path, 12 * MiB + 3)
    stored = store.put("big.bin", payload, "application/gzip")
    assert s3.read(bucket, "big.bin") == data
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    parts = [(h, b) for m, u, h, b in pool.seen if m == "PUT" and "partNumber=" in u]
    assert [len(b) for _h, b in parts] == [5 * MiB, 5 * MiB, 2 * MiB + 3]
    for headers, body in parts:
        assert headers["Content-MD5"] == base64.b64encode(hashlib.md5(body).digest()).decode()
    assert s3.client().stat_object(bucket, "big.bin").content_type == "application/gzip"


@pytest.mark.parametrize("size", [100_000, 11 * MiB])
def test_damaged_upload_is_detected_by_etag_and_sent_again(
    s3: S3Server, bucket: str, tmp_path: Path, small_parts: None, size: int
) -> None:
    """moto checks neither Content-MD5 nor the payload hash: the ETag comparison catches it."""
    pool = RecordingPool(corrupt=1)
    store = s3mod.S3Store(store_config(s3, bucket), http_client=pool)
    payload, data = payload_of(tmp_path, size)
    attempts = quick()
    store.put("damaged.bin", payload, "", attempts)
    assert s3.read(bucket, "damaged.bin") == data
    assert attempts.retries == 1
    assert pool.corrupt == 0  # the damage did happen


def test_lost_answer_to_complete_is_confirmed_not_repeated(
    s3: S3Server, bucket: str, tmp_path: Path, small_parts: None
) -> None:
    pool = RecordingPool(lose_complete=1)
    store = s3mod.S3Store(store_config(s3, bucket), http_client=pool)
    payload, data = payload_of(tmp_path, 6 * MiB)
    attempts = quick()
    store.put("lost.bin", payload, "", attempts)
    assert s3.read(bucket, "lost.bin") == data
    assert attempts.retries == 1
    assert sum(1 for m, u, _h, _b in pool.seen if m == "POST" and "uploadId=" in u) == 2


def test_missing_bucket_is_created_when_allowed(s3: S3Server, tmp_path: Path) -> None:
    name = f"fresh-{random.Random().randrange(1 << 30)}"
    store = s3mod.S3Store(store_config(s3, name))
    store.put("k", Payload.of(b"data"), "")
    assert s3.read(name, "k") == b"data"
    other = s3mod.S3Store(store_config(s3, name + "-x", create=False))
    with pytest.raises(StoreError) as info:
        other.put("k", Payload.of(b"data"), "")
    assert (info.value.code, info.value.transient, info.value.whole_store) == ("NoSuchBucket", False, True)
    with pytest.raises(StoreError, match="NoSuchBucket"):
        other.check("artifacts/")
    s3mod.S3Store(store_config(s3, name + "-y")).check("artifacts/")
    assert s3.client().bucket_exists(name + "-y")


@pytest.fixture
def proxy(s3: S3Server) -> Iterator[FaultProxy]:
    with FaultProxy("127.0.0.1", s3.port) as p:
        yield p


def test_read_timeout_ends_a_hung_request(s3: S3Server, bucket: str, proxy: FaultProxy) -> None:
    proxy.set_mode("stall")
    cfg = store_config(s3, bucket, netloc=proxy.netloc, read_timeout=0.5, connect_timeout=0.5)
    store = s3mod.S3Store(cfg)
    with pytest.raises(StoreError) as info:
        store.put("k", Payload.of(b"x" * 1000), "")
    assert info.value.transient and info.value.code == "Network"
    assert "timed out" in str(info.value)


# -- the local store and the uploader ------------------------------------------------------------------


def test_local_store_reports_sha256_and_does_not_create_bucket_unless_allowed(tmp_path: Path) -> None:
    store = LocalStore(tmp_path, "bkt", create_bucket=False)
    with pytest.raises(StoreError) as info:
        store.put("a/b", Payload.of(b"data"))
    assert info.value.whole_store and not (tmp_path / "bkt").exists()
    stored = LocalStore(tmp_path, "bkt").put("a/b", Payload.of(b"da", b"ta"))
    assert stored.sha256 == hashlib.sha256(b"data").hexdigest()
    assert (tmp_path / "bkt/a/b").read_bytes() == b"data"


@pytest.mark.parametrize("size", [0, 5, MiB - 1, MiB, 3 * MiB + 7])
def test_local_store_digest_and_file_are_those_of_a_mkstemp_write(tmp_path: Path, size: int) -> None:
    """Either SHA-256 module (builtin for small objects, OpenSSL's for large ones) gives the same
    digest; the object is a 0600 file like ``tempfile.mkstemp``'s, and no temporary file is left."""
    data = os.urandom(size)
    stored = LocalStore(tmp_path, "bkt").put("a/b", Payload.of(data))
    assert (stored.size, stored.sha256) == (size, hashlib.sha256(data).hexdigest())
    assert (tmp_path / "bkt/a/b").read_bytes() == data
    assert (tmp_path / "bkt/a/b").stat().st_mode & 0o777 == 0o600
    assert os.listdir(tmp_path / "bkt/a") == ["b"]


class FlakyStore(LocalStore):
    """A local store whose first ``failures`` writes of each key fail as a 503 would."""

    def __init__(self, root: Path, failures: int) -> None:
        super().__init__(root, "bkt")
        self.failures = failures
        self.tries: dict[str, int] = {}
        self.order: list[str] = []
        self.lock = threading.Lock()

    def _put(self, key: str, path: Path, payload: Payload, metadata: Any = None) -> Any:
        with self.lock:
            self.tries[key] = self.tries.get(key, 0) + 1
            if self.tries[key] <= self.failures:
                raise StoreError("SlowDown: injected", transient=True, code="SlowDown")
            self.order.append(key)
        return super()._put(key, path, payload, metadata)


def test_ordered_lane_stores_in_order_through_retries(tmp_path: Path) -> None:
    store = FlakyStore(tmp_path, failures=2)
    uploader = Uploader(lambda: store, Reporter(quiet=True), policy=RetryPolicy(base=0.001, cap=0.002))
    uploader.start(preflight="off")
    keys = [f"logs/{i:08d}.log" for i in range(20)]
    for i, key in enumerate(keys):
        uploader.submit(Job(key, lambda i=i: Payload.of(b"chunk %d" % i)), ordered=True)
    for i in range(5):
        uploader.submit(Job(f"r{i}.tgz", lambda i=i: Payload.of(b"result %d" % i)))
    missing = uploader.close(None)
    assert missing == []
    assert [k for k in store.order if k.startswith("logs/")] == keys
    assert all(store.tries[k] == 3 for k in keys)
    assert all(j.retries == 2 and j.result is not None for j in uploader.jobs())


@pytest.mark.parametrize("last", [False, True], ids=["pool", "last"])
@pytest.mark.parametrize("failures", [0, 1, 3])
def test_stored_here_first_then_retried_elsewhere_as_if_never_moved(
    tmp_path: Path, failures: int, last: bool
) -> None:
    """``store_here``: the first attempt on the caller's thread; after a transient failure the
    job goes on in the pool (or on a thread of its own) with the same retry count and backoff."""
    store = FlakyStore(tmp_path, failures=failures)
    uploader = Uploader(lambda: store, Reporter(quiet=True), policy=RetryPolicy(base=0.001, cap=0.002))
    uploader.start(preflight="off")
    job = uploader.store_here(Job("a/b", lambda: Payload.of(b"data")), time.monotonic() + 60 if last else None)
    assert job.done.is_set() is (failures == 0)  # stored here, at once, when nothing failed
    assert job.done.wait(30)
    assert job.stored and (tmp_path / "bkt/a/b").read_bytes() == b"data"
    assert (job.attempts, job.retries, uploader.requests) == (failures + 1, failures, failures + 1)
    assert uploader.close(None) == []


def test_a_permanent_error_here_is_final_at_once(tmp_path: Path) -> None:
    store = LocalStore(tmp_path, "bkt")
    uploader = Uploader(lambda: store, Reporter(quiet=True, fd=os.open(os.devnull, os.O_WRONLY)))
    uploader.start(preflight="off")
    job = uploader.store_here(Job("../escape", lambda: Payload.of(b"x")), time.monotonic() + 60)
    assert job.done.is_set() and not job.stored and "refusing object key" in job.error


def test_whole_store_error_fails_every_job_with_one_attempt(tmp_path: Path) -> None:
    store = LocalStore(tmp_path, "missing", create_bucket=False)
    uploader = Uploader(lambda: store, Reporter(quiet=True, fd=os.open(os.devnull, os.O_WRONLY)))
    uploader.start(preflight="warn", probe_prefix="x/")
    jobs = [uploader.submit(Job(f"k{i}", lambda: Payload.of(b"x"))) for i in range(10)]
    missing = uploader.close(None)
    assert missing == jobs
    assert uploader.permanent is not None and uploader.permanent.code == "NoSuchBucket"
    assert sum(j.attempts for j in jobs) == 0  # the preflight answered before any upload tried
    assert all(j.cause == "NoSuchBucket" for j in jobs)


class GatedStore(LocalStore):
    """A local store whose preflight check answers only once ``gate`` is set (a slow, or loaded,
    server), then as ``answer`` says; every put attempt is counted."""

    def __init__(self, root: Path, answer: StoreError | None) -> None:
        super().__init__(root, "bkt", create_bucket=True)
        self.gate = threading.Event()
        self.answer = answer
        self.puts = 0

    def check(self, prefix: str) -> None:
        self.gate.wait()
        if self.answer is not None:
            raise self.answer
        super().check(prefix)

    def _put(self, key: str, path: Path, payload: Payload, *rest: Any) -> Any:
        self.puts += 1
        return super()._put(key, path, payload, *rest)


def test_uploads_wait_for_the_preflights_verdict_however_long_it_takes(tmp_path: Path) -> None:
    """--preflight warn: the check runs beside COMMAND. A store that refuses our credentials must
    cost that one request: no upload (ordered or pooled) may go out before the verdict, however
    slow the answer (it was once a 5 s cap, passed on a loaded machine: 5 requests, not 1)."""
    refusal = StoreError(
        "SignatureDoesNotMatch: check --secret-key",
        transient=False,
        code="SignatureDoesNotMatch",
        whole_store=True,
    )
    store = GatedStore(tmp_path, refusal)
    uploader = Uploader(lambda: store, Reporter(quiet=True, fd=os.open(os.devnull, os.O_WRONLY)))
    uploader.start(preflight="warn", probe_prefix="x/")
    jobs = [uploader.submit(Job(f"r{i}.tgz", lambda: Payload.of(b"x"))) for i in range(4)]
    chunk = uploader.submit(Job("logs/00000000.log", lambda: Payload.of(b"line\n")), ordered=True)
    # Every worker and the ordered lane's preparer are waiting: none has sent anything.
    wait_until(lambda: uploader.awaiting_verdict == 5, timeout=30, what="uploads waiting for the preflight")
    assert store.puts == 0
    store.gate.set()
    missing = uploader.close(None)
    assert missing == [*jobs, chunk]
    assert (store.puts, uploader.requests) == (0, 1)  # the preflight's request alone
    assert all(j.attempts == 0 and j.cause == "SignatureDoesNotMatch" for j in missing)


@pytest.mark.parametrize("last", [False, True], ids=["pool", "last"])
def test_stored_here_never_waits_for_the_preflight_on_the_callers_thread(tmp_path: Path, last: bool) -> None:
    """A preflight still out (a hung file system): ``store_here`` hands the job on at once, and it
    goes up once the verdict comes, as a submitted one would."""
    store = GatedStore(tmp_path, None)
    uploader = Uploader(lambda: store, Reporter(quiet=True))
    uploader.start(preflight="warn", probe_prefix="x/")
    job = uploader.store_here(Job("r.tgz", lambda: Payload.of(b"x")), time.monotonic() + 60 if last else None)
    wait_until(lambda: uploader.awaiting_verdict == 1, timeout=30, what="the upload waiting, on a thread")
    assert not job.done.is_set() and store.puts == 0
    store.gate.set()
    assert job.done.wait(30) and job.stored and store.puts == 1


def test_uploads_go_ahead_once_a_slow_preflight_says_the_store_is_fine(tmp_path: Path) -> None:
    store = GatedStore(tmp_path, None)
    uploader = Uploader(lambda: store, Reporter(quiet=True))
    uploader.start(preflight="warn", probe_prefix="x/")
    job = uploader.submit(Job("r.tgz", lambda: Payload.of(b"x")))
    wait_until(lambda: uploader.awaiting_verdict == 1, timeout=30, what="the upload waiting")
    store.gate.set()
    assert uploader.close(None) == []
    assert (store.puts, job.attempts) == (1, 1) and (tmp_path / "bkt/r.tgz").read_bytes() == b"x"


def test_a_preflight_that_never_answers_holds_uploads_only_until_the_flush_deadline(tmp_path: Path) -> None:
    store = GatedStore(tmp_path, None)  # the gate stays shut: a hung server
    uploader = Uploader(lambda: store, Reporter(quiet=True))
    uploader.start(preflight="warn", probe_prefix="x/")
    job = uploader.submit(Job("r.tgz", lambda: Payload.of(b"x")))
    wait_until(lambda: uploader.awaiting_verdict == 1, timeout=30, what="the upload waiting")
    uploader.set_deadline(time.monotonic())  # the flush deadline, now
    wait_until(job.done.is_set, timeout=30, what="the job given up")
    assert (job.stored, job.attempts, store.puts) == (False, 0, 0)
    assert "flush deadline" in job.reason(), job.reason()
    store.gate.set()
