"""Smoke test of the built image, run the way Tekton runs a step.

One container run (`run_tekton_step`) with: the image's ENTRYPOINT and only args (python3
/smoke/probe.py), a results directory mounted at /tekton/results, a downward-API labels file at
/etc/podinfo/labels, S3 credentials in the environment (passed by name, never on the command line),
a real S3 server on the host reached through --network host, an arbitrary non-root UID with GID 0
(as OpenShift does) and a read-only root filesystem (so the wrapper provably writes only to /tmp
and the results directory). The check_* functions then prove: exit code and byte-exact
pass-through, the stored objects (tar contents byte-exact against the files the step wrote), that
the wrapper is PID 1 and reaps orphaned zombies. check_sigterm stops a running container as a
pod's termination would; further checks look at the image itself.

Used by tests/test_image.py and by image/smoke-test (command line; see --help).
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# The public project, as pyproject's [project.urls] Source names it (the image's source label).
PROJECT_URL = "https://github.com/tekton-uploader/tekton-uploader"
PROBE = HERE / "smoke_probe.py"
DEFAULT_IMAGE = "localhost/tekton-uploader:ci"
DEFAULT_USER = "1000650000:0"  # an OpenShift-style arbitrary UID, root group
RESULT_NAMES = ("blob", "digest", "empty", "probe.json")
STEP = "main"  # the wrapper's default step name
ENGINE_TIMEOUT = 300


class SmokeFailure(AssertionError):
    """A smoke check failed; the message says what was expected and what was seen."""


def engine() -> list[str]:
    """The container engine's argv prefix, with the global flags this machine kind needs.

    CONTAINER_ENGINE=docker selects docker; PODMAN_GLOBAL_FLAGS overrides podman's global flags
    (default: runc + cgroupfs when runc is installed, as image/build does; see image/README.md).
    """
    name = os.environ.get("CONTAINER_ENGINE", "podman")
    if name != "podman":
        return [name]
    if "PODMAN_GLOBAL_FLAGS" in os.environ:
        return ["podman", *shlex.split(os.environ["PODMAN_GLOBAL_FLAGS"])]
    flags = ["--cgroup-manager=cgroupfs"]
    if shutil.which("runc"):
        flags = ["--runtime", "runc", *flags]
    return ["podman", *flags]


def _ulimit(resource: int) -> int:
    import resource as res

    hard = res.getrlimit(resource)[1]
    return 4096 if hard == res.RLIM_INFINITY or hard > 4096 else hard


def run_flags() -> list[str]:
    """Flags for `run` on this machine kind: ulimits within the hard limits, host network, and
    no proxy variables copied from the host into the container."""
    import resource as res

    nofile, nproc = _ulimit(res.RLIMIT_NOFILE), _ulimit(res.RLIMIT_NPROC)
    flags = ["--rm", "--network", "host", "--ulimit", f"nofile={nofile}:{nofile}",
             "--ulimit", f"nproc={nproc}:{nproc}"]
    if engine()[0] == "podman":
        flags.append("--http-proxy=false")
    return flags


def engine_output(*args: str) -> str:
    proc = subprocess.run([*engine(), *args], capture_output=True, timeout=ENGINE_TIMEOUT, check=False)
    if proc.returncode != 0:
        raise SmokeFailure(f"{shlex.join(args[:3])} failed ({proc.returncode}): "
                           f"{proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout.decode()


@dataclass
class S3Target:
    """Where the wrapper in the container stores objects, and how the host reads them back."""

    endpoint: str
    bucket: str
    access_key: str
    secret_key: str = field(repr=False)
    region: str = "us-east-1"

    def client(self) -> Any:  # minio.Minio
        from urllib.parse import urlsplit

        from minio import Minio

        url = urlsplit(self.endpoint)
        return Minio(url.netloc, access_key=self.access_key, secret_key=self.secret_key,
                     secure=url.scheme == "https", region=self.region)

    def keys(self, prefix: str) -> list[str]:
        objects = self.client().list_objects(self.bucket, prefix=prefix, recursive=True)
        return sorted(str(o.object_name) for o in objects)

    def read(self, key: str) -> bytes:
        resp = self.client().get_object(self.bucket, key)
        try:
            return bytes(resp.read())
        finally:
            resp.close()
            resp.release_conn()

    def container_env(self) -> dict[str, str]:
        return {
            "OBJECTSTORE_ENDPOINT": self.endpoint,
            "OBJECTSTORE_BUCKET": self.bucket,
            "OBJECTSTORE_ACCESS_KEY": self.access_key,
            "OBJECTSTORE_SECRET_KEY": self.secret_key,
            "OBJECTSTORE_REGION": self.region,
        }


@dataclass
class StepRun:
    """What one Tekton-like container run did, as seen from the host."""

    image: str
    target: S3Target
    pipelinerun: str
    pipelinetask: str
    user: str
    returncode: int
    stdout: bytes
    stderr: bytes
    expected_code: int
    expected_stdout: bytes
    expected_stderr: bytes
    results: dict[str, bytes]
    probe: dict[str, Any]
    launched: float

    @property
    def prefix(self) -> str:
        return f"artifacts/{self.pipelinerun}/{self.pipelinetask}/"

    @property
    def start_to_command(self) -> float:
        """Seconds from `podman run` being started on the host to COMMAND's first line."""
        return float(self.probe["started"]) - self.launched

    @property
    def wrapper_to_command(self) -> float:
        """Seconds from the wrapper's exec as PID 1 to COMMAND's exec (clock-tick resolution)."""
        ticks = int(self.probe["self_start_ticks"]) - int(self.probe["pid1_start_ticks"])
        return ticks / int(self.probe["clk_tck"])


def expected_streams() -> tuple[bytes, bytes]:
    """What COMMAND writes: every byte value, invalid UTF-8, CR/LF mixes, no final newline."""
    out = b"".join(b"stdout line %05d \xc3\xa9\xe2\x82\xac\r\n" % i for i in range(3000))
    out += bytes(range(256)) + b"\xff\xfe not utf-8 and no newline at the end"
    err = b"".join(b"stderr line %04d\n" % i for i in range(500)) + b"\x00\x01\x02 last"
    return out, err


@contextmanager
def _workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="tekton-uploader-smoke-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def run_tekton_step(image: str, target: S3Target, *, user: str = DEFAULT_USER,
                    exit_code: int = 3, entrypoint: str | None = None,
                    reap_timeout: float = 20.0) -> StepRun:
    """Run the image once like a Tekton step with only `args:`; see the module docstring.

    ``entrypoint`` replaces the image's ENTRYPOINT (like a step with `command:`), e.g. to show
    that the checks catch a PID 1 that is not the wrapper.
    """
    token = uuid.uuid4().hex[:10]
    run, task = f"smoke-run-{token}", f"build-{token}"
    expected_out, expected_err = expected_streams()
    with _workdir() as work:
        work.chmod(0o755)
        smoke, results, podinfo = work / "smoke", work / "results", work / "podinfo"
        for d in (smoke, podinfo):
            d.mkdir(mode=0o755)
        results.mkdir()
        results.chmod(0o777)  # like Tekton's results emptyDir: writable by the step's UID
        shutil.copy(PROBE, smoke / "probe.py")
        (smoke / "stdout.bin").write_bytes(expected_out)
        (smoke / "stderr.bin").write_bytes(expected_err)
        (smoke / "exit-code").write_text(str(exit_code))
        (smoke / "reap-timeout").write_text(str(reap_timeout))
        labels = (
            'app.kubernetes.io/managed-by="tekton-pipelines"\n'
            'tekton.dev/pipeline="smoke"\n'
            f'tekton.dev/pipelineRun="{run}"\n'
            f'tekton.dev/pipelineTask="{task}"\n'
            'tekton.dev/task="smoke-task"\n'
            f'tekton.dev/taskRun="{run}-{task}"'
        )
        (podinfo / "labels").write_text(labels)
        for f in (*smoke.iterdir(), podinfo / "labels"):
            f.chmod(0o644)

        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("AWS_", "OBJECTSTORE_", "MINIO_"))
               and k not in ("PIPELINERUN", "PIPELINETASK")}
        wrapper_env = {**target.container_env(), "OBJECTSTORE_QUIET": "1"}
        env.update(wrapper_env)
        argv = [
            *engine(), "run", *run_flags(),
            "--user", user, "--read-only",
            "-v", f"{results}:/tekton/results",
            "-v", f"{podinfo / 'labels'}:/etc/podinfo/labels:ro",
            "-v", f"{smoke}:/smoke:ro",
            # -e NAME (no value): the engine copies the value from its own environment, so the
            # secret never appears on a command line.
            *[arg for name in sorted(wrapper_env) for arg in ("-e", name)],
            *(["--entrypoint", entrypoint] if entrypoint else []),
            image, *([] if entrypoint else ["python3"]), "/smoke/probe.py",
        ]
        launched = time.time()
        proc = subprocess.run(argv, env=env, capture_output=True, timeout=ENGINE_TIMEOUT,
                              check=False)
        files = {p.name: p.read_bytes() for p in results.iterdir() if p.is_file()}
    try:
        probe = json.loads(files["probe.json"])
    except (KeyError, ValueError) as exc:
        raise SmokeFailure(
            f"COMMAND did not run to the end (exit {proc.returncode}; no probe.json: {exc}); "
            f"stderr: {proc.stderr[-2000:].decode(errors='replace')}"
        ) from exc
    return StepRun(image, target, run, task, user, proc.returncode, proc.stdout, proc.stderr,
                   exit_code, expected_out, expected_err, files, probe, launched)


# --------------------------------------------------------------------------- checks on a StepRun


def _fail(condition: bool, message: str) -> None:
    if not condition:
        raise SmokeFailure(message)


def _tar_members(blob: bytes, key: str) -> dict[str, bytes]:
    """Regular-file members of a gzip'd tar, by name; fails on anything else in it."""
    members: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
            for info in tar.getmembers():
                _fail(info.isfile(), f"{key}: member {info.name!r} is not a regular file")
                extracted = tar.extractfile(info)
                assert extracted is not None
                members[info.name] = extracted.read()
    except (tarfile.TarError, OSError) as exc:
        raise SmokeFailure(f"{key}: not a readable tar.gz ({exc})") from exc
    return members


def check_exit_code(r: StepRun) -> None:
    _fail(r.returncode == r.expected_code,
          f"container exit code {r.returncode}, expected COMMAND's {r.expected_code}; "
          f"stderr tail: {r.stderr[-500:].decode(errors='replace')}")


TEKTON_SIZE_WARNING = b"tekton-uploader: warning: results total "


def _without_size_warning(stderr: bytes) -> bytes:
    """The probe's results exceed Tekton's 4096-byte limit on purpose (a 132 KiB blob), so the
    wrapper ends stderr with its warning about that (shown even with --quiet; COMMAND's stderr
    need not end with a newline): not COMMAND's output."""
    at = stderr.rfind(TEKTON_SIZE_WARNING)
    if at >= 0 and stderr.find(b"\n", at) == len(stderr) - 1:
        return stderr[:at]
    return stderr


def check_passthrough(r: StepRun) -> None:
    for name, seen, want in (("stdout", r.stdout, r.expected_stdout),
                             ("stderr", _without_size_warning(r.stderr), r.expected_stderr)):
        if seen != want:
            at = next((i for i, (a, b) in enumerate(zip(seen, want)) if a != b),
                      min(len(seen), len(want)))
            raise SmokeFailure(f"{name} not passed through byte-exact: {len(seen)} bytes, expected "
                               f"{len(want)}; first difference at byte {at}: "
                               f"{seen[at:at + 40]!r} vs {want[at:at + 40]!r}")


def check_object_keys(r: StepRun) -> None:
    keys = r.target.keys(r.prefix)
    want = {f"{r.prefix}{name}.tgz" for name in RESULT_NAMES} | {f"{r.prefix}{STEP}-log.tgz"}
    chunks = [k for k in keys if k.startswith(f"{r.prefix}logs/{STEP}/") and k.endswith(".log")]
    missing = sorted(want - set(keys))
    # the wrapper's run summary and manifest, when it writes them
    optional = {f"{r.prefix}{STEP}-summary.json", f"{r.prefix}{STEP}-manifest.json"}
    extra = sorted(set(keys) - want - set(chunks) - optional)
    _fail(not missing and not extra and bool(chunks),
          f"objects under {r.prefix}: missing {missing}, unexpected {extra}, "
          f"{len(chunks)} live log chunks (need at least one)")


def check_results(r: StepRun) -> None:
    _fail(set(r.results) == set(RESULT_NAMES),
          f"results dir holds {sorted(r.results)}, expected {sorted(RESULT_NAMES)}")
    for name, content in sorted(r.results.items()):
        key = f"{r.prefix}{name}.tgz"
        members = _tar_members(r.target.read(key), key)
        _fail(list(members) == [name], f"{key}: members {sorted(members)}, expected [{name!r}]")
        _fail(members[name] == content,
              f"{key}: member {name!r} has {len(members[name])} bytes that differ from the "
              f"{len(content)} bytes COMMAND wrote")


def check_log(r: StepRun) -> None:
    key = f"{r.prefix}{STEP}-log.tgz"
    members = _tar_members(r.target.read(key), key)
    _fail(len(members) == 1, f"{key}: {len(members)} members {sorted(members)}, expected one log")
    log = next(iter(members.values()))
    # stdout and stderr are two pipes: the wrapper may read either first.
    _fail(log in (r.expected_stdout + r.expected_stderr, r.expected_stderr + r.expected_stdout),
          f"{key}: log of {len(log)} bytes is not COMMAND's stdout and stderr "
          f"({len(r.expected_stdout)} + {len(r.expected_stderr)} bytes)")
    chunk_keys = r.target.keys(f"{r.prefix}logs/{STEP}/")
    joined = b"".join(r.target.read(k) for k in chunk_keys)
    _fail(joined == log, f"live chunks {chunk_keys} joined ({len(joined)} bytes) differ from the "
                         f"final log ({len(log)} bytes)")


def check_pid1(r: StepRun) -> None:
    p = r.probe
    cmdline = [str(a) for a in p["pid1_cmdline"]]
    _fail(any(Path(a).name == "tekton-uploader" for a in cmdline[:2]),
          f"PID 1 is {cmdline}, not the wrapper")
    _fail(p["ppid"] == 1, f"COMMAND's parent is PID {p['ppid']}, expected the wrapper as PID 1")
    uid, gid = (int(x) for x in r.user.split(":"))
    _fail((p["uid"], p["gid"]) == (uid, gid),
          f"COMMAND ran as {p['uid']}:{p['gid']}, expected {r.user}")
    _fail(p["env_results_dir"] == "/tekton/results" and p["env_spool_dir"] == "/tmp/tekton-uploader",
          f"image env defaults not seen by COMMAND: {p['env_results_dir']}, {p['env_spool_dir']}")


def check_reaps_zombies(r: StepRun) -> None:
    orphan = r.probe["orphan"]
    _fail(orphan["adopted_by"] == 1,
          f"the orphan was re-parented to PID {orphan['adopted_by']}, expected 1")
    _fail(bool(orphan["reaped"]),
          f"PID 1 did not reap the orphan {orphan['pid']} in time "
          f"(state {orphan['final_state']!r}): zombies accumulate")


def check_sigterm(image: str, target: S3Target) -> None:
    """`podman stop` (what a pod's termination does) SIGTERMs PID 1: the wrapper forwards it, the
    container exits 128+15, and the log up to then is stored. PID 1 gets no default signal
    handlers from the kernel, so this fails when the wrapper does not handle SIGTERM itself."""
    token = uuid.uuid4().hex[:10]
    name, run, task = f"tekton-uploader-smoke-{token}", f"stop-run-{token}", "stop-task"
    wrapper_env = {**target.container_env(), "OBJECTSTORE_QUIET": "1",
                   "PIPELINERUN": run, "PIPELINETASK": task}
    env = {**os.environ, **wrapper_env}
    argv = [*engine(), "run", *run_flags(), "--name", name, "--user", DEFAULT_USER, "--read-only",
            *[arg for var in sorted(wrapper_env) for arg in ("-e", var)],
            image, "python3", "-c", "import time; print('ready', flush=True); time.sleep(600)"]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # returns once COMMAND runs (or at EOF if it never does)
        _fail(line == b"ready\n", f"COMMAND did not start: first stdout line {line!r}")
        subprocess.run([*engine(), "stop", "-t", "60", name], capture_output=True,
                       timeout=ENGINE_TIMEOUT, check=False)
        _out, err = proc.communicate(timeout=ENGINE_TIMEOUT)
    finally:
        if proc.poll() is None:
            subprocess.run([*engine(), "rm", "-f", name], capture_output=True, timeout=120,
                           check=False)
            proc.kill()
            proc.wait()
    _fail(proc.returncode == 128 + 15,
          f"after `stop` the container exited {proc.returncode}, expected 143 (COMMAND killed by "
          f"SIGTERM); stderr: {err[-500:].decode(errors='replace')}")
    key = f"artifacts/{run}/{task}/{STEP}-log.tgz"
    members = _tar_members(target.read(key), key)
    _fail(list(members.values()) == [b"ready\n"], f"{key} holds {members}, expected the log 'ready'")


RUN_CHECKS: tuple[Callable[[StepRun], None], ...] = (
    check_exit_code, check_passthrough, check_object_keys, check_results, check_log, check_pid1,
    check_reaps_zombies,
)


# --------------------------------------------------------------------------- checks on the image


def inspect(image: str) -> dict[str, Any]:
    data = json.loads(engine_output("image", "inspect", image))
    return dict(data[0])


def check_config(image: str) -> None:
    cfg = inspect(image)["Config"]
    _fail(cfg.get("Entrypoint") == ["tekton-uploader"],
          f"Entrypoint is {cfg.get('Entrypoint')}, expected ['tekton-uploader']")
    _fail(not cfg.get("Cmd"), f"Cmd is {cfg.get('Cmd')}, expected none")
    env = dict(item.split("=", 1) for item in cfg.get("Env") or [])
    _fail(env.get("OBJECTSTORE_RESULTS_DIR") == "/tekton/results",
          f"OBJECTSTORE_RESULTS_DIR={env.get('OBJECTSTORE_RESULTS_DIR')}")
    _fail(env.get("TEKTON_UPLOADER_IN_IMAGE") == "1",
          f"TEKTON_UPLOADER_IN_IMAGE={env.get('TEKTON_UPLOADER_IN_IMAGE')}, expected 1")
    _fail(env.get("OBJECTSTORE_SPOOL_DIR", "").startswith("/tmp/"),
          f"OBJECTSTORE_SPOOL_DIR={env.get('OBJECTSTORE_SPOOL_DIR')} is not under /tmp")
    secretish = [k for k in env if any(w in k.upper() for w in ("SECRET", "PASSWORD", "TOKEN", "KEY"))]
    _fail(not secretish, f"credential-like variables baked into the image: {secretish}")
    labels = cfg.get("Labels") or {}
    for name in ("source", "version", "description", "licenses", "revision"):
        _fail(f"org.opencontainers.image.{name}" in labels, f"label org.opencontainers.image.{name} missing")
    source = labels.get("org.opencontainers.image.source", "")
    _fail(source == PROJECT_URL,
          f"label org.opencontainers.image.source is {source!r}, expected {PROJECT_URL!r}")


def check_clean(image: str) -> None:
    """No pip, wheels, sources or caches left in the final image; the console script is on PATH."""
    script = (
        'set -u; command -v tekton-uploader; '
        'for p in /opt/tekton-uploader/bin/pip /wheels /src /opt/build /root/.cache/pip; do '
        '[ -e "$p" ] && echo "LEFTOVER $p"; done; '
        'ls -d /opt/tekton-uploader/lib/python*/site-packages/pip '
        '/opt/tekton-uploader/lib/python*/site-packages/setuptools 2>/dev/null '
        '| sed "s/^/LEFTOVER /"; true'
    )
    out = engine_output("run", *run_flags(), "--entrypoint", "sh", image, "-c", script)
    _fail("LEFTOVER" not in out, f"build leftovers in the final image:\n{out}")
    _fail(out.splitlines()[0] == "/usr/local/bin/tekton-uploader",
          f"tekton-uploader is not on PATH at /usr/local/bin: {out.splitlines()[:1]}")


def check_no_endpoint_is_refused(image: str) -> None:
    """In the image, no endpoint is an error (exit 2, COMMAND not started) instead of storing into
    the container's ./objectstore, lost with it; file:///DIR on purpose still works. The package
    also carries its py.typed marker (PEP 561)."""
    base = [*engine(), "run", *run_flags(), "-e", "PIPELINERUN=a", "-e", "PIPELINETASK=b"]
    proc = subprocess.run([*base, image, "sh", "-c", "echo COMMAND ran"], capture_output=True,
                          timeout=ENGINE_TIMEOUT, check=False)
    err = proc.stderr.decode(errors="replace")
    _fail(proc.returncode == 2 and proc.stdout == b"",
          f"no endpoint in the image: exit {proc.returncode}, stdout {proc.stdout[:200]!r}, "
          "expected 2 and nothing")
    _fail(len(err.splitlines()) == 1 and "--endpoint" in err and "TEKTON_UPLOADER_IN_IMAGE=1" in err,
          f"no endpoint in the image: expected one line naming --endpoint, got {err[:400]!r}")
    proc = subprocess.run([*base, image, "--endpoint", "file:///tmp/store", "-q", "--", "sh", "-c",
                           "echo COMMAND ran"], capture_output=True, timeout=ENGINE_TIMEOUT, check=False)
    _fail(proc.returncode == 0 and proc.stdout == b"COMMAND ran\n",
          f"--endpoint file:///DIR in the image: exit {proc.returncode}, {proc.stderr[:300]!r}")
    out = engine_output("run", *run_flags(), "--entrypoint", "sh", image, "-c",
                        "ls /opt/tekton-uploader/lib/python*/site-packages/entrypoint/py.typed")
    _fail(out.strip().endswith("entrypoint/py.typed"), f"py.typed not installed: {out!r}")


def check_help(image: str) -> None:
    proc = subprocess.run([*engine(), "run", *run_flags(), image, "--help"], capture_output=True,
                          timeout=ENGINE_TIMEOUT, check=False)
    _fail(proc.returncode == 0 and b"Usage:" in proc.stdout,
          f"`run IMAGE --help` exited {proc.returncode}: {proc.stdout[:200]!r} {proc.stderr[:200]!r}")


def added_size(image: str) -> int:
    """Bytes the image adds on top of its base (uncompressed, as the engine reports sizes)."""
    info = inspect(image)
    base = (info["Config"].get("Labels") or {}).get("org.opencontainers.image.base.name")
    _fail(bool(base), "label org.opencontainers.image.base.name missing: cannot find the base")
    return int(info["Size"]) - int(inspect(str(base))["Size"])


IMAGE_CHECKS: tuple[Callable[[str], None], ...] = (
    check_config, check_clean, check_help, check_no_endpoint_is_refused)


# --------------------------------------------------------------------------- command line


def _start_moto(access_key: str, secret_key: str) -> tuple[subprocess.Popen[bytes], str]:
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key}
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1):
                return proc, f"http://127.0.0.1:{port}"
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise SystemExit("smoke-test: could not start a moto server "
                                 "(pip install 'moto[server]', or pass --endpoint)") from None
            time.sleep(0.05)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="image/smoke-test",
        description="Run the built image like a Tekton step against a real S3 server and check it. "
        "Credentials come from OBJECTSTORE_ACCESS_KEY / OBJECTSTORE_SECRET_KEY.",
    )
    parser.add_argument("--image", default=os.environ.get("IMAGE", DEFAULT_IMAGE))
    parser.add_argument("--endpoint", help="S3 endpoint on this host, reached from the container "
                        "with --network host (default: start a moto server on 127.0.0.1)")
    parser.add_argument("--bucket", help="bucket to use (default: a new one)")
    args = parser.parse_args(argv)

    access = os.environ.get("OBJECTSTORE_ACCESS_KEY", "smoke-access-key")
    secret = os.environ.get("OBJECTSTORE_SECRET_KEY", "smoke-secret-key")
    moto = None
    endpoint = args.endpoint
    if not endpoint:
        moto, endpoint = _start_moto(access, secret)
    try:
        target = S3Target(endpoint, args.bucket or f"smoke-{uuid.uuid4().hex[:12]}", access, secret)
        if not target.client().bucket_exists(target.bucket):
            target.client().make_bucket(target.bucket)
        failures = 0

        def report(name: str, check: Callable[[], None]) -> None:
            nonlocal failures
            try:
                check()
                print(f"PASS {name}")
            except SmokeFailure as exc:
                failures += 1
                print(f"FAIL {name}: {exc}")

        for image_check in IMAGE_CHECKS:
            report(image_check.__name__, functools.partial(image_check, args.image))
        try:
            run = run_tekton_step(args.image, target)
        except SmokeFailure as exc:
            print(f"FAIL run_tekton_step: {exc}")
            return 1
        for run_check in RUN_CHECKS:
            report(run_check.__name__, functools.partial(run_check, run))
        report(check_sigterm.__name__, functools.partial(check_sigterm, args.image, target))
        print(f"start-to-COMMAND: {run.start_to_command:.3f} s from `run` on the host, "
              f"{run.wrapper_to_command:.2f} s from the wrapper's exec as PID 1")
        try:
            print(f"added size: {added_size(args.image) / 1e6:.1f} MB on top of the base")
        except SmokeFailure as exc:
            print(f"added size: unknown ({exc})")
        print(f"{len(IMAGE_CHECKS) + len(RUN_CHECKS) + 1 - failures} passed, {failures} failed")
        return 1 if failures else 0
    finally:
        if moto is not None:
            moto.terminate()
            moto.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
