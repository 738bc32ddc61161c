"""The examples of README.md's "Use as a library" section (the Go README's two examples, ported) run against moto.

The code blocks are taken from the document itself, so the documentation cannot rot; only the
placeholders (endpoint, bucket, credentials) and the Tekton objects around them are filled in.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import ACCESS_KEY, REPO, SECRET_KEY, S3Server, untar_single

DOC = REPO / "README.md"


def blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def fill(code: str, s3: S3Server, bucket: str) -> str:
    for placeholder, value in {
        '"https://s3.us-south.cloud-object-storage.appdomain.cloud"': repr(s3.endpoint),
        '"<url>"': repr(s3.endpoint),
        '"testing-bucket"': repr(bucket),
        '"<bucket_name>"': repr(bucket),
        'access_key="<>"': f"access_key={ACCESS_KEY!r}",
        'secret_key="<>"': f"secret_key={SECRET_KEY!r}",
        "s3_force_path_style=False": "s3_force_path_style=True",  # moto on an IP address needs it
    }.items():
        code = code.replace(placeholder, value)
    return code


def run(tmp_path: Path, code: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "example.py"
    script.write_text(code)
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)


def test_example_1_setup_and_store_a_task_result(tmp_path: Path, s3: S3Server, bucket: str) -> None:
    setup, store = blocks()[0:2]
    assert "w.load(config)" in setup and "w.write(pr_name, task_name, param.name" in store
    tekton = textwrap.dedent(
        """
        import logging
        from types import SimpleNamespace
        out = 0.92
        run = SimpleNamespace(metadata=SimpleNamespace(labels={
            "tekton.dev/pipelineRun": "pr-1", "tekton.dev/pipelineTask": "train"}))
        param = SimpleNamespace(name="accuracy")
        logger = logging.getLogger()
        run_results = []
        """
    )
    proc = run(tmp_path, fill(setup, s3, bucket) + tekton + fill(store, s3, bucket) + "print(run_results)\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "Connected to s3.\n[{'name': 'accuracy', 'value': '0.92'}]\n"
    assert s3.keys(bucket) == ["artifacts/pr-1/train/accuracy.tgz"]
    assert untar_single(s3.read(bucket, "artifacts/pr-1/train/accuracy.tgz")) == ("accuracy", b"0.92")


def test_example_2_logging_with_a_handler_and_a_shutdown_hook(
    tmp_path: Path, s3: S3Server, bucket: str
) -> None:
    initialize, file_like = blocks()[2:4]
    assert "flush_on_signals(object_store)" in initialize
    code = (
        fill(initialize, s3, bucket)
        + "logger = initialize_logger()\n"
        + "for i in range(3):\n    logger.info('message %d', i)\n"
        + f"logger_config = ObjectStoreConfig(service_endpoint={s3.endpoint!r}, "
        + f"default_bucket_name={bucket!r}, access_key='key', secret_key='key_secret', region='us-south')\n"
        + fill(file_like, s3, bucket)
        + "logging.info('via the file-like Logger too')\n"
    )
    proc = run(tmp_path, code)
    assert proc.returncode == 0, proc.stderr
    messages = ["First log msg with object store logger.", "message 0", "message 1", "message 2"]
    assert proc.stdout.splitlines() == [*messages, "via the file-like Logger too"]  # the stdout handler
    keys = s3.keys(bucket, "artifacts/_logs/")
    prefixes = sorted({k.rsplit("/", 1)[0] for k in keys})
    assert len(prefixes) == 2  # one per Logger, each new
    first = b"".join(s3.read(bucket, k) for k in keys if k.startswith(prefixes[0] + "/"))
    second = b"".join(s3.read(bucket, k) for k in keys if k.startswith(prefixes[1] + "/"))
    records = [json.loads(line) for line in first.decode().splitlines()]
    assert [r["message"] for r in records] == [*messages, "via the file-like Logger too"]
    assert {r["level"] for r in records} == {"INFO"}
    assert second == b"via the file-like Logger too\n"
