"""The Python library (entrypoint.library): Writer, Logger, ObjectStoreHandler, ObjectStoreConfig.

Against the real moto server (and the local directory store where the behaviour is shared);
faults come from tests/faultproxy.py between the library and the server.
"""

from __future__ import annotations

import io
import logging
import random
import subprocess
import sys
import threading
import traceback
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import (
    ACCESS_KEY,
    SECRET_KEY,
    S3Server,
    StoreView,
    clean_env,
    free_port,
    untar_single,
    wait_until,
)
from faultproxy import FaultProxy

from entrypoint import (
    JsonFormatter,
    Logger,
    ObjectStoreConfig,
    ObjectStoreConfigError,
    ObjectStoreError,
    ObjectStoreHandler,
    Writer,
)

MiB = 1024 * 1024


def config_for(s3: S3Server | FaultProxy, bucket: str, **fields: object) -> ObjectStoreConfig:
    return ObjectStoreConfig(
        service_endpoint=s3.endpoint,
        default_bucket_name=bucket,
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        region="us-east-1",
        **fields,  # type: ignore[arg-type]
    )


def concatenated(view: StoreView | tuple[S3Server, str], prefix: str) -> bytes:
    if isinstance(view, StoreView):
        return b"".join(view.read(k) for k in view.keys(prefix))
    server, bucket = view
    return b"".join(server.read(bucket, k) for k in server.keys(bucket, prefix))


def text_lines(seed: int, count: int, width: int = 200) -> Iterator[str]:
    """``count`` numbered lines of 1..width random characters (some outside ASCII)."""
    rng = random.Random(seed)
    pool = "".join(rng.choices("abcdefghijklmnopqrstuvwxyz ÄÖÜ€", k=64 * 1024))
    for i in range(count):
        start = rng.randrange(len(pool) - width)
        yield f"{i:08d} " + pool[start : start + rng.randrange(1, width)]


@pytest.fixture
def proxy(s3: S3Server) -> Iterator[FaultProxy]:
    with FaultProxy("127.0.0.1", s3.port) as p:
        yield p


@pytest.fixture
def private_logger() -> Iterator[logging.Logger]:
    """A logger of its own (no propagation to the root), cleaned up after the test."""
    log = logging.getLogger(f"test-library-{uuid.uuid4().hex[:8]}")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    yield log
    for h in list(log.handlers):
        log.removeHandler(h)


# -- import ---------------------------------------------------------------------------------


def test_plain_import_loads_neither_the_library_nor_the_s3_client() -> None:
    code = (
        "import sys, entrypoint, entrypoint.cli\n"
        "print(sorted(m for m in sys.modules if m.startswith(('entrypoint.library', 'minio'))))\n"
        "from entrypoint import Writer, Logger, ObjectStoreHandler, flush_on_signals\n"
        "print('entrypoint.library' in sys.modules, 'minio' in sys.modules)\n"
        "try:\n    entrypoint.NoSuchThing\nexcept AttributeError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=clean_env())
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "[]",
        "True False",  # the S3 client is imported only when a store is opened
        "module 'entrypoint' has no attribute 'NoSuchThing'",
    ]


# -- Writer ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [b"", b"0.92", bytes(range(256)) * 4099, random.Random(5).randbytes(3 * MiB + 1)],
    ids=["empty", "short", "binary-1MiB", "random-3MiB"],
)
def test_writer_stores_a_real_tgz_with_the_exact_bytes(store: StoreView, content: bytes) -> None:
    writer = Writer()
    writer.load(ObjectStoreConfig.from_env(store.env))
    key = writer.write("run-1", "task-1", "accuracy", content)
    assert key == "artifacts/run-1/task-1/accuracy.tgz"
    assert store.keys() == [key]
    assert untar_single(store.read(key)) == ("accuracy", content)


def test_writer_stores_text_as_utf8_and_honours_the_key_prefix(s3: S3Server, bucket: str) -> None:
    writer = Writer(config_for(s3, bucket, key_prefix="/custom/pre/"))
    key = writer.write("run", "task", "greeting", "grüß dich\n")
    assert key == "custom/pre/run/task/greeting.tgz"
    assert untar_single(s3.read(bucket, key)) == ("greeting", "grüß dich\n".encode())
    assert writer.default_bucket_name == bucket


def test_writer_creates_buckets(s3: S3Server) -> None:
    name = f"w-{uuid.uuid4().hex[:12]}"
    writer = Writer(config_for(s3, name, create_bucket=True))
    assert s3.client().bucket_exists(name)
    other = f"w-{uuid.uuid4().hex[:12]}"
    writer.create_new_bucket(other)
    writer.create_new_bucket(other)  # an existing bucket is fine
    assert s3.client().bucket_exists(other)
    with pytest.raises(ObjectStoreConfigError, match="invalid bucket name 'Bad_Name'"):
        writer.create_new_bucket("Bad_Name")


def test_writer_without_create_bucket_says_the_bucket_is_missing(s3: S3Server) -> None:
    name = f"missing-{uuid.uuid4().hex[:12]}"
    with pytest.raises(ObjectStoreError, match="NoSuchBucket") as info:
        Writer(config_for(s3, name, create_bucket=False))
    assert not info.value.transient
    assert not s3.client().bucket_exists(name)


@pytest.mark.parametrize("name", ["../etc", "a/b", "", ".."])
def test_writer_refuses_names_that_leave_the_task_prefix(s3: S3Server, bucket: str, name: str) -> None:
    writer = Writer(config_for(s3, bucket))
    with pytest.raises(ValueError, match="result"):
        writer.write("run", "task", name, b"x")
    with pytest.raises(ValueError, match="pipelinerun"):
        writer.write(name, "task", "ok", b"x")
    assert s3.keys(bucket) == []


def test_writer_not_loaded_and_disabled(s3: S3Server, bucket: str) -> None:
    with pytest.raises(ObjectStoreError, match=r"not loaded: call load\(config\)"):
        Writer().write("run", "task", "r", b"x")
    writer = Writer(config_for(s3, bucket, enable=False))
    assert writer.write("run", "task", "r", b"x") == "artifacts/run/task/r.tgz"
    assert s3.keys(bucket) == []


def test_writer_retries_transient_errors(s3: S3Server, bucket: str, proxy: FaultProxy) -> None:
    writer = Writer(config_for(proxy, bucket))
    proxy.fail_next(3, status=503)
    key = writer.write("run", "task", "r", b"after three 503s")
    assert untar_single(s3.read(bucket, key)) == ("r", b"after three 503s")
    assert proxy.stats().by_fault.get("503") == 3


def test_writer_raises_when_the_store_stays_down_and_works_again_after(
    s3: S3Server, bucket: str, proxy: FaultProxy
) -> None:
    writer = Writer(config_for(proxy, bucket))
    proxy.down()
    with pytest.raises(ObjectStoreError, match=r"storing artifacts/run/task/r\.tgz in .* failed") as info:
        writer.write("run", "task", "r", b"x", timeout=1.0)
    assert info.value.keys == ["artifacts/run/task/r.tgz"]
    assert info.value.transient
    proxy.up()
    writer.write("run", "task", "r", b"y")
    assert untar_single(s3.read(bucket, "artifacts/run/task/r.tgz")) == ("r", b"y")


def test_writer_load_fails_clearly_when_nothing_listens() -> None:
    cfg = ObjectStoreConfig(
        service_endpoint=f"http://127.0.0.1:{free_port()}", access_key="ak", secret_key="sk-123456"
    )
    with pytest.raises(ObjectStoreError, match=r"cannot use http://127\.0\.0\.1:\d+/mlpipeline") as info:
        Writer(cfg, timeout=0.5)
    assert info.value.transient


# -- Logger ---------------------------------------------------------------------------------


def test_logger_fed_50mb_through_logging_stores_exactly_what_was_logged(
    s3: S3Server, bucket: str, private_logger: logging.Logger
) -> None:
    handler = ObjectStoreHandler(config_for(s3, bucket), prefix="app/logs", max_size="4MiB", flush_interval=0)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    private_logger.addHandler(handler)
    expected = io.BytesIO()
    lines = text_lines(seed=1, count=10**9, width=2000)
    while expected.tell() < 50 * MiB:
        line = next(lines)
        private_logger.info("%s", line)
        expected.write(f"INFO {line}\n".encode())
    handler.close()
    keys = s3.keys(bucket, "app/logs/")
    assert concatenated((s3, bucket), "app/logs/") == expected.getvalue()
    assert keys == [f"app/logs/{i:08d}.log" for i in range(len(keys))]
    assert len(keys) >= 13
    for key in keys:  # records stay whole: each object is at most max_size and ends a line
        data = s3.read(bucket, key)
        assert len(data) <= 4 * MiB and data.endswith(b"\n")


def test_logger_is_thread_safe_and_keeps_each_threads_order(
    s3: S3Server, bucket: str, private_logger: logging.Logger
) -> None:
    handler = ObjectStoreHandler(config_for(s3, bucket), prefix="threads", max_size=64 * 1024)
    private_logger.addHandler(handler)

    def work(n: int) -> None:
        for i in range(3000):
            private_logger.info("thread %d record %05d %s", n, i, "x" * (i % 50))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    handler.close()
    lines = concatenated((s3, bucket), "threads/").decode().splitlines()
    assert len(lines) == 4 * 3000
    for n in range(4):
        mine = [line for line in lines if line.startswith(f"thread {n} ")]
        assert mine == [f"thread {n} record {i:05d} {'x' * (i % 50)}" for i in range(3000)]


def test_flush_waits_until_stored_and_names_sort_in_write_order(s3: S3Server, bucket: str) -> None:
    with Logger(config_for(s3, bucket), prefix="/ordered/", flush_interval=0) as logger:
        assert logger.write(b"first ") == 6
        logger.flush()
        assert s3.keys(bucket) == ["ordered/00000000.log"]  # no waiting: flush() returned when stored
        logger.write(memoryview(b"second "))
        logger.write(bytearray(b"third"))
        logger.flush()
        logger.flush()  # nothing new: no new object
        assert s3.keys(bucket) == ["ordered/00000000.log", "ordered/00000001.log"]
        logger.write(b" fourth")
    assert s3.keys(bucket) == [f"ordered/0000000{i}.log" for i in range(3)]
    assert concatenated((s3, bucket), "ordered/") == b"first second third fourth"
    assert logger.closed


def test_a_write_larger_than_max_size_is_split_and_small_ones_are_not(s3: S3Server, bucket: str) -> None:
    data = random.Random(3).randbytes(2500)
    with Logger(config_for(s3, bucket), prefix="split", max_size=1000, flush_interval=0) as logger:
        logger.write(b"a" * 600)
        logger.write(b"b" * 600)  # would overflow: the first chunk is sealed before it
        logger.write(data)
    sizes = [len(s3.read(bucket, k)) for k in s3.keys(bucket, "split/")]
    assert sizes == [600, 600, 1000, 1000, 500]
    assert concatenated((s3, bucket), "split/") == b"a" * 600 + b"b" * 600 + data


def test_flush_interval_uploads_without_any_flush_call(s3: S3Server, bucket: str) -> None:
    logger = Logger(config_for(s3, bucket, log_flush_interval=0.2), prefix="tick")
    try:
        logger.write(b"line 1\n")
        wait_until(lambda: s3.keys(bucket, "tick/"), timeout=30, what="the interval upload")
        assert s3.read(bucket, "tick/00000000.log") == b"line 1\n"
        logger.write(b"line 2\n")
        wait_until(lambda: len(s3.keys(bucket, "tick/")) == 2, timeout=30, what="the second upload")
    finally:
        logger.close()
    assert concatenated((s3, bucket), "tick/") == b"line 1\nline 2\n"


def test_stream_handler_on_the_text_stream(store: StoreView, private_logger: logging.Logger) -> None:
    logger = Logger(ObjectStoreConfig.from_env(store.env), prefix="text", flush_interval=0)
    stream = logger.text()
    private_logger.addHandler(logging.StreamHandler(stream))
    lines = list(text_lines(seed=2, count=500))
    for line in lines:
        private_logger.warning(line)  # StreamHandler flushes the stream after each record
    stream.sync()
    assert store.keys("text/") == ["text/00000000.log"]  # ...which did not make an object each
    assert store.read("text/00000000.log").decode() == "".join(f"{line}\n" for line in lines)
    stream.close()
    assert not logger.closed
    logger.write(b"end")
    logger.close()
    assert store.read("text/00000001.log") == b"end"


def test_json_lines_handler(s3: S3Server, bucket: str, private_logger: logging.Logger) -> None:
    import json

    handler = ObjectStoreHandler(config_for(s3, bucket), prefix="json", level="INFO")
    handler.setFormatter(JsonFormatter(fields=("step",)))
    private_logger.addHandler(handler)
    private_logger.debug("not stored: below the handler's level")
    private_logger.info("epoch %d done", 3, extra={"step": "train"})
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        private_logger.exception("failed")
    handler.flush()
    records = [json.loads(line) for line in concatenated((s3, bucket), "json/").splitlines()]
    handler.close()
    assert [(r["level"], r["message"], r.get("step")) for r in records] == [
        ("INFO", "epoch 3 done", "train"),
        ("ERROR", "failed", None),
    ]
    assert "RuntimeError: boom" in records[1]["exc_info"]


def test_logger_misuse_is_reported_clearly(s3: S3Server, bucket: str) -> None:
    unloaded = Logger(max_size=1024)
    with pytest.raises(ValueError, match=r"not loaded: call load_defaults\(config\)"):
        unloaded.write(b"x")
    unloaded.load_defaults(config_for(s3, bucket))
    with pytest.raises(ValueError, match="already loaded"):
        unloaded.load_defaults(config_for(s3, bucket))
    with pytest.raises(TypeError, match=r"bytes, not str; use Logger.text\(\)"):
        unloaded.write("text")  # type: ignore[arg-type]
    unloaded.close()
    unloaded.close()  # idempotent
    unloaded.flush()  # no-op once closed
    with pytest.raises(ValueError, match="closed"):
        unloaded.write(b"x")
    with pytest.raises(ValueError, match=r"log prefix segment '\.\.'"):
        Logger(config_for(s3, bucket), prefix="a/../b")


def test_disabled_logger_discards(s3: S3Server, bucket: str) -> None:
    with Logger(config_for(s3, bucket, enable=False), prefix="off") as logger:
        assert logger.write(b"dropped") == 7
        logger.flush()
    assert s3.keys(bucket) == []


def test_default_prefix_is_unique_per_logger_and_under_the_key_prefix(s3: S3Server, bucket: str) -> None:
    first = Logger(config_for(s3, bucket, key_prefix="kp"))
    second = Logger(config_for(s3, bucket, key_prefix="kp"))
    try:
        assert first.prefix.startswith("kp/_logs/") and first.prefix.endswith("/")
        assert first.prefix != second.prefix
        assert first.prefix < second.prefix  # later loggers sort after earlier ones
    finally:
        first.close()
        second.close()


def test_long_lived_logger_does_not_keep_finished_uploads(s3: S3Server, bucket: str) -> None:
    with Logger(config_for(s3, bucket), prefix="many", max_size=10, flush_interval=0) as logger:
        for i in range(200):
            logger.write(b"%09d\n" % i)
        logger.flush()
        assert logger._uploader is not None
        assert len(logger._uploader.jobs()) <= 1
    assert len(s3.keys(bucket, "many/")) == 200


# -- the store misbehaving ------------------------------------------------------------------


def test_writes_do_not_block_while_the_store_is_throttled(
    s3: S3Server, bucket: str, proxy: FaultProxy, private_logger: logging.Logger
) -> None:
    proxy.throttle(20_000, direction="upload")  # one 64 KiB chunk takes over 3 s
    handler = ObjectStoreHandler(config_for(proxy, bucket), prefix="slow", max_size=64 * 1024)
    private_logger.addHandler(handler)
    expected = []
    for line in text_lines(seed=4, count=20000, width=200):
        private_logger.info(line)
        expected.append(f"{line}\n")
    # Every write has returned while the store had taken in at most a small part of the data:
    # writes waiting for uploads would have had to wait for all of it.
    assert proxy.stats().bytes_up < len("".join(expected)) // 4
    assert len(s3.keys(bucket, "slow/")) < 10
    proxy.throttle(None)
    handler.logger.close(timeout=120)
    assert concatenated((s3, bucket), "slow/").decode() == "".join(expected)


def test_close_after_an_outage_stores_everything_once_the_store_is_back(
    s3: S3Server, bucket: str, proxy: FaultProxy
) -> None:
    proxy.down()  # down from the start: the bucket check and every upload fail at first
    logger = Logger(config_for(proxy, bucket), prefix="outage", max_size=256 * 1024, flush_interval=0)
    data = random.Random(6).randbytes(3 * MiB)
    for i in range(0, len(data), 4096):
        logger.write(data[i : i + 4096])
    proxy.down_for(2.0)  # still down; back up in 2 s, while close() waits
    logger.close(timeout=60)
    assert concatenated((s3, bucket), "outage/") == data
    assert len(s3.keys(bucket, "outage/")) == 12


def test_close_reports_what_is_missing_when_the_store_stays_down(
    s3: S3Server, bucket: str, proxy: FaultProxy, capfd: pytest.CaptureFixture[str]
) -> None:
    secret = f"sk-{uuid.uuid4().hex}"
    cfg = ObjectStoreConfig(
        service_endpoint=proxy.endpoint,
        default_bucket_name=bucket,
        access_key=ACCESS_KEY,
        secret_key=secret,
        token=f"tok-{uuid.uuid4().hex}",
    )
    proxy.down()
    logger = Logger(cfg, prefix="lost", flush_interval=0)
    logger.write(b"never stored")
    with pytest.raises(ObjectStoreError, match=r"not stored within 0\.5 s, still retrying") as flushed:
        logger.flush(timeout=0.5)
    with pytest.raises(ObjectStoreError, match=r"1 log object\(s\) not stored: lost/00000000\.log") as closed:
        logger.close(timeout=1.0)
    assert closed.value.keys == ["lost/00000000.log"]
    for exc in (flushed.value, closed.value):
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        assert secret not in text and cfg.token not in text and ACCESS_KEY not in text
    out, err = capfd.readouterr()
    assert secret not in out + err and cfg.token not in out + err


def test_permanent_errors_are_raised_by_flush(s3: S3Server) -> None:
    cfg = config_for(s3, f"nobucket-{uuid.uuid4().hex[:10]}", create_bucket=False, quiet=True)
    logger = Logger(cfg, prefix="p", flush_interval=0)
    logger.write(b"x")
    with pytest.raises(ObjectStoreError, match=r"could not be stored: p/00000000\.log .*NoSuchBucket"):
        logger.flush(timeout=30)
    logger.close()  # the failure was reported by flush() already


# -- configuration and secrets --------------------------------------------------------------


SAMPLES = {
    "service_endpoint": ("http://127.0.0.1:9000", "http://127.0.0.1:9000"),
    "default_bucket_name": ("some-bucket", "some-bucket"),
    "create_bucket": ("false", False),
    "access_key": ("ak", "ak"),
    "secret_key": ("sk", "sk"),
    "token": ("tok", "tok"),
    "region": ("eu-west-1", "eu-west-1"),
    "s3_force_path_style": ("true", True),
    "ca_bundle": ("/etc/ca.pem", "/etc/ca.pem"),
    "key_prefix": ("kp", "kp"),
    "log_chunk_size": ("512KiB", 512 * 1024),
    "log_flush_interval": ("500ms", 0.5),
    "flush_timeout": ("2m", 120.0),
    "spool_dir": ("/tmp/spool", "/tmp/spool"),
    "quiet": ("1", True),
    "debug": ("yes", True),
}


def test_from_env_reads_each_of_the_clis_variables() -> None:
    from entrypoint.cli import click_command

    command = click_command()
    from entrypoint.library.config import CLI_PARAMS, FALLBACK_ENV

    cli = {p.name: p for p in command.params}
    assert set(SAMPLES) == set(CLI_PARAMS)
    checked = 0
    for field_name, option in CLI_PARAMS.items():
        variables = cli[option].envvar if option in cli else FALLBACK_ENV[field_name]
        raw, value = SAMPLES[field_name]
        for variable in variables:
            assert getattr(ObjectStoreConfig.from_env({variable: raw}), field_name) == value, variable
            checked += 1
    assert checked >= 22
    assert ObjectStoreConfig.from_env({}) == ObjectStoreConfig()


def test_from_env_precedence_and_overrides() -> None:
    env = {
        "AWS_ENDPOINT_URL": "http://second:1",
        "OBJECTSTORE_ENDPOINT": "http://first:1",
        "OBJECTSTORE_BUCKET": "",  # empty counts as unset, as on the command line
        "ARTIFACT_BUCKET": "artifact-bucket",
        "AWS_REGION": "from-env",
    }
    cfg = ObjectStoreConfig.from_env(env, region="override")
    assert (cfg.service_endpoint, cfg.default_bucket_name, cfg.region) == (
        "http://first:1",
        "artifact-bucket",
        "override",
    )
    with pytest.raises(ObjectStoreConfigError, match="OBJECTSTORE_LOG_CHUNK_SIZE: 'lots' is not a size"):
        ObjectStoreConfig.from_env({"OBJECTSTORE_LOG_CHUNK_SIZE": "lots"})
    with pytest.raises(ObjectStoreConfigError, match="OBJECTSTORE_CREATE_BUCKET: 'maybe' is not a valid"):
        ObjectStoreConfig.from_env({"OBJECTSTORE_CREATE_BUCKET": "maybe"})
    with pytest.raises(TypeError, match="no field 'bucket'"):
        ObjectStoreConfig.from_env({}, bucket="x")


def test_config_validation_names_the_field() -> None:
    cases = {
        "service_endpoint: unsupported scheme": ObjectStoreConfig(service_endpoint="ftp://x"),
        "secret_key: S3 endpoint http://h:1 needs credentials": ObjectStoreConfig(
            service_endpoint="http://h:1", access_key="ak"
        ),
        "default_bucket_name: invalid bucket name": ObjectStoreConfig(default_bucket_name="x"),
        "ca_bundle: /nonexistent.pem is not a readable file": ObjectStoreConfig(
            service_endpoint="https://h", access_key="a", secret_key="b", ca_bundle="/nonexistent.pem"
        ),
    }
    for message, cfg in cases.items():
        with pytest.raises(ObjectStoreConfigError, match=message):
            cfg.to_store_config()
    local = ObjectStoreConfig(service_endpoint="file:///tmp/st").to_store_config()
    assert (local.endpoint, local.local_dir, local.bucket) == (None, Path("/tmp/st"), "mlpipeline")


def test_secrets_never_show_in_repr_or_errors() -> None:
    secret, token, access = (f"{kind}-{uuid.uuid4().hex}" for kind in ("secret", "token", "access"))
    cfg = ObjectStoreConfig(service_endpoint="http://h:1", access_key=access, secret_key=secret, token=token)
    for text in (repr(cfg), str(cfg), f"{cfg}", repr([cfg])):
        assert secret not in text and token not in text and access not in text
        assert "secret_key=***" in text
    url = f"http://{access}:{secret}@127.0.0.1:1/path"
    in_url = ObjectStoreConfig(service_endpoint=url, access_key=access, secret_key=secret)
    with pytest.raises(ObjectStoreConfigError, match="credentials in the URL are not allowed") as info:
        in_url.to_store_config()
    assert secret not in str(info.value) and access not in str(info.value)
    dead = ObjectStoreConfig(
        service_endpoint=f"http://127.0.0.1:{free_port()}", access_key=access, secret_key=secret, token=token
    )
    with pytest.raises(ObjectStoreError) as failed:
        Writer(dead, timeout=0.2)
    text = "".join(traceback.format_exception(type(failed.value), failed.value, failed.value.__traceback__))
    assert secret not in text and token not in text and access not in text


def test_library_on_the_local_directory_store(tmp_path: Path) -> None:
    cfg = ObjectStoreConfig(service_endpoint=f"file://{tmp_path}", default_bucket_name="local-bucket")
    key = Writer(cfg).write("run", "task", "result", b"local")
    assert untar_single((tmp_path / "local-bucket" / key).read_bytes()) == ("result", b"local")
    with Logger(cfg, prefix="logs", max_size=4) as logger:
        logger.write(b"abcdefgh")
    assert sorted(p.name for p in (tmp_path / "local-bucket" / "logs").iterdir()) == [
        "00000000.log",
        "00000001.log",
    ]


# -- issue 19: a new user's first hour -----------------------------------------------------------


def test_a_refused_handler_config_gives_one_traceback_not_two_at_exit(tmp_path: Path) -> None:
    code = (
        "import logging\n"
        "from entrypoint import ObjectStoreConfig, ObjectStoreHandler\n"
        "logging.getLogger().addHandler(ObjectStoreHandler(ObjectStoreConfig(default_bucket_name='<bucket_name>')))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1
    assert proc.stderr.count("Traceback") == 1, proc.stderr
    assert "ObjectStoreConfigError" in proc.stderr and "has no attribute 'logger'" not in proc.stderr


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]"])
def test_virtual_host_style_on_an_ip_or_localhost_is_refused_at_once(host: str) -> None:
    config = ObjectStoreConfig(
        service_endpoint=f"http://{host}:9",
        default_bucket_name="testing-bucket",
        access_key="a",
        secret_key="b",
        s3_force_path_style=False,
    )
    with pytest.raises(ObjectStoreConfigError, match=r"s3_force_path_style=False: .* use path style"):
        Writer(config)
    with pytest.raises(ObjectStoreConfigError, match="s3_force_path_style=False"):
        Logger(config)
    # A DNS name, or path style, is fine (not contacted here).
    ObjectStoreConfig(service_endpoint="https://s3.example.com", access_key="a", secret_key="b",
                      s3_force_path_style=False).to_store_config()
    config.s3_force_path_style = True
    config.to_store_config()


def test_the_wrapper_refuses_virtual_host_style_on_an_ip_too(tmp_path: Path) -> None:
    from conftest import run_wrapper

    env = clean_env(OBJECTSTORE_ACCESS_KEY="a", OBJECTSTORE_SECRET_KEY="b")
    marker = tmp_path / "ran"
    proc = run_wrapper(["--endpoint", "http://127.0.0.1:9", "--virtual-host-style", "--pipelinerun", "r",
                        "--pipelinetask", "t", "--", "touch", str(marker)], env)
    assert proc.returncode == 2 and not marker.exists()
    assert "--virtual-host-style: endpoint http://127.0.0.1:9 is an IP address" in proc.stderr.decode()


def test_writer_close_and_context_manager(store: StoreView) -> None:
    config = ObjectStoreConfig.from_env(store.env)
    with Writer(config) as writer:
        key = writer.write("run", "task", "r", b"x")
    assert writer.closed and "closed" in repr(writer)
    assert untar_single(store.read(key)) == ("r", b"x")
    with pytest.raises(ValueError, match="Writer is closed"):
        writer.write("run", "task", "r", b"y")
    writer.close()  # again: nothing
    assert untar_single(store.read(key)) == ("r", b"x")
