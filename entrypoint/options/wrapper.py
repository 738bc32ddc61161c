"""The options of ``tekton-uploader``: one table, read by the fast parser and by click alike."""

from __future__ import annotations

from .store import (
    READER_ONLY_VARIABLES,
    SECURITY_OPTIONS,
    STORE_OPTIONS,
    create_bucket_option,
    key_prefix_option,
)
from .table import Option
from .table import env_option as _opt

CONTEXT = {"allow_interspersed_args": False, "help_option_names": ["-h", "--help"], "max_content_width": 100}
SECRETS = ("secret_key", "session_token")  # warned about when given as flags (visible to ps)

# The defaults of the termination budget, written once: the table below shows them, settings/step.py
# falls back on them, the supervisor's Policy starts from them (README: "The termination budget").
FLUSH_TIMEOUT = 300.0  # --flush-timeout
TERMINATION_GRACE = 30.0  # --termination-grace: Kubernetes' terminationGracePeriodSeconds default
KILL_AFTER_SHARE = 0.5  # --kill-after: this share of the grace; the rest is the final flush's

EPILOG = """\b
Exit codes:
  COMMAND's own exit code, or 128+N when COMMAND was killed by signal N
  2    bad usage or configuration, or --preflight strict failed (COMMAND not started)
  74   objects still missing after the final flush although COMMAND exited 0
       (unless --ignore-upload-errors)
  124  --timeout expired and COMMAND was stopped (also in the manifest when COMMAND
       was stopped before a Tekton step timeout, see --tekton-timeout)
  125  internal error of the wrapper
  126  COMMAND not executable
  127  COMMAND not found
"""


OPTIONS: tuple[Option, ...] = (
    *STORE_OPTIONS,
    create_bucket_option,
    _opt(
        "--pipelinerun",
        env=["PIPELINERUN"],
        metavar="NAME",
        help="PipelineRun name. [default: from the pod labels]",
    ),
    _opt(
        "--pipelinetask",
        env=["PIPELINETASK"],
        metavar="NAME",
        help="Pipeline task name. [default: from the pod labels]",
    ),
    _opt(
        "--pod-labels",
        env=["OBJECTSTORE_POD_LABELS"],
        default="/etc/podinfo/labels",
        show_default=True,
        metavar="FILE",
        help="Downward-API labels file read when the names are not given.",
    ),
    _opt(
        "--pod-annotations",
        env=["OBJECTSTORE_POD_ANNOTATIONS"],
        default="/etc/podinfo/annotations",
        show_default=True,
        metavar="FILE",
        help="Downward-API annotations file (read with --tekton-results-logs).",
    ),
    _opt(
        "--tekton-results-logs",
        env=["OBJECTSTORE_TEKTON_RESULTS_LOGS"],
        metavar="PREFIX",
        help="At the end, also store the whole log as plain text for Tekton Results' blob log reader: "
        "PREFIX/<namespace>/<result>/<taskrun-uid>/step-<step>.log (PREFIX: Results' LOGS_PATH). "
        "[default: off]",
    ),
    _opt(
        "--namespace",
        env=["OBJECTSTORE_NAMESPACE", "POD_NAMESPACE"],
        metavar="NAME",
        help="The pod's namespace, for --tekton-results-logs. [default: the service account's]",
    ),
    _opt(
        "--tekton-results-result",
        env=["OBJECTSTORE_TEKTON_RESULTS_RESULT"],
        metavar="NAME",
        help="The Tekton Results result name, for --tekton-results-logs. [default: from the pod's "
        "annotations and labels]",
    ),
    _opt(
        "--taskrun-uid",
        env=["OBJECTSTORE_TASKRUN_UID"],
        metavar="UID",
        help="The TaskRun's UID, for --tekton-results-logs. [default: the tekton.dev/taskRunUID label]",
    ),
    _opt(
        "--step",
        env=["OBJECTSTORE_STEP"],
        default="main",
        show_default=True,
        metavar="NAME",
        help="Step name, used in <step>-log.tgz and logs/<step>/.",
    ),
    _opt(
        "--attempt",
        env=["OBJECTSTORE_ATTEMPT"],
        default="auto",
        show_default=True,
        metavar="auto|N",
        help="Which attempt of the step this is (Tekton retries run the same step again in a new pod): "
        "auto reads the pod name ($HOSTNAME, <taskrun>-pod-retryN for retry N: attempt N+1). "
        "Attempt N >= 2 keeps its own <step>-attempt-N-* objects and logs/<step>/attempt-N/ chunks, "
        "and stores <step>-log.tgz too. [range: 1 to 10000]",
    ),
    _opt(
        "--results-dir",
        env=["OBJECTSTORE_RESULTS_DIR"],
        default="/tekton/results",
        show_default=True,
        metavar="DIR",
        help="Each regular file here is stored as <result>.tgz after COMMAND exits.",
    ),
    _opt(
        "--step-results-dir",
        env=["OBJECTSTORE_STEP_RESULTS_DIR"],
        metavar="DIR",
        help="Also store each file here (Tekton's /tekton/steps/step-<name>/results) as "
        "<step>/<result>.tgz. [default: off]",
    ),
    _opt(
        "--artifacts-file",
        env=["OBJECTSTORE_ARTIFACTS_FILE"],
        metavar="PATH",
        help="Write the stored results as Tekton artifact outputs (uri, sha256 digest) to PATH "
        "($(step.artifacts.path)), and the --fetch-result ones as inputs, merged with what COMMAND "
        "wrote there. [default: off]",
    ),
    _opt(
        "--chains-outputs",
        env=["OBJECTSTORE_CHAINS_OUTPUTS"],
        is_flag=True,
        help="After storing the results, write for each stored result R the result R-ARTIFACT_OUTPUTS "
        "(uri, sha256 digest) that Tekton Chains reads, and R-ARTIFACT_INPUTS for each fetched one.",
    ),
    _opt(
        "--offload-results-over",
        env=["OBJECTSTORE_OFFLOAD_RESULTS_OVER"],
        type="size",
        limits=("0", "1GiB"),
        metavar="SIZE",
        help="After storing them, replace result files larger than SIZE by their s3://bucket/key URI, "
        "so Tekton's 4096-byte limit is not hit. [default: off]",
    ),
    _opt(
        "--fetch-result",
        env=["OBJECTSTORE_FETCH_RESULT"],
        multiple=True,
        metavar="TASK/RESULT=PATH",
        help="Before COMMAND starts, extract a stored result of this pipelinerun (or "
        "RUN/TASK/RESULT, or an s3://bucket/key URI) to PATH; exit 2 if missing. Repeatable.",
    ),
    key_prefix_option,
    _opt(
        "--log-chunk-size",
        env=["OBJECTSTORE_LOG_CHUNK_SIZE"],
        type="size",
        limits=("1KiB", "5GiB"),
        default="8MiB",
        show_default=True,
        help="Upload the live log in chunks of this size.",
    ),
    _opt(
        "--log-flush-interval",
        env=["OBJECTSTORE_LOG_FLUSH_INTERVAL"],
        type="duration",
        limits=("10ms", "24h"),
        default="5s",
        show_default=True,
        help="Upload unsent log data at least this often (an empty chunk every 12 intervals while COMMAND "
        "is silent: readers tell a silent step from a killed one).",
    ),
    _opt(
        "--fast-flush-at",
        env=["OBJECTSTORE_FAST_FLUSH_AT"],
        default="90%",
        show_default=True,
        metavar="PERCENT",
        help="Upload the live log every second once the memory cgroup's usage passes this share of "
        "its limit (1%-100%), or memory pressure is high, or after a SIGTERM.",
    ),
    _opt(
        "--cgroup-root",
        env=["OBJECTSTORE_CGROUP_ROOT"],
        default="/sys/fs/cgroup",
        show_default=True,
        metavar="DIR",
        help="Where the cgroup filesystem is mounted (memory limit, peak and OOM kills are read there).",
    ),
    _opt(
        "--termination-log",
        env=["OBJECTSTORE_TERMINATION_LOG"],
        metavar="FILE",
        help="When the kernel's OOM killer killed COMMAND, add that to this termination message file "
        "(JSON, as Tekton's). [default: /tekton/termination inside a Tekton step, else off]",
    ),
    _opt(
        "--spool-dir",
        env=["OBJECTSTORE_SPOOL_DIR"],
        metavar="DIR",
        help="Where sealed chunks wait for upload. [default: a temporary directory]",
    ),
    _opt(
        "--flush-timeout",
        env=["OBJECTSTORE_FLUSH_TIMEOUT"],
        type="duration",
        limits=("1ms", "24h"),
        default=f"{FLUSH_TIMEOUT / 60:g}m",
        show_default=True,
        help="Longest time to keep uploading after COMMAND exits.",
    ),
    _opt(
        "--spool-limit",
        env=["OBJECTSTORE_SPOOL_LIMIT"],
        type="size",
        limits=("1MiB", "1024TiB"),
        default="1GiB",
        show_default=True,
        help="Most disk the spool may use; beyond it output still passes through but capture pauses "
        "(a marker line in the log says how many bytes are missing).",
    ),
    _opt(
        "--preflight",
        env=["OBJECTSTORE_PREFLIGHT"],
        choices=["off", "warn", "strict"],
        default="warn",
        show_default=True,
        help="Check bucket access: warn = in the background while COMMAND runs; strict = before "
        "COMMAND, exit 2 on a permanent error; off = no check.",
    ),
    _opt(
        "--ignore-upload-errors",
        env=["OBJECTSTORE_IGNORE_UPLOAD_ERRORS"],
        is_flag=True,
        help="Exit with COMMAND's code even when objects are missing after the final flush.",
    ),
    _opt(
        "--skip-results-on-failure",
        env=["OBJECTSTORE_SKIP_RESULTS_ON_FAILURE"],
        is_flag=True,
        help="Do not upload results when COMMAND fails (by default they are, to help debugging).",
    ),
    _opt(
        "--connect-timeout",
        env=["OBJECTSTORE_CONNECT_TIMEOUT"],
        type="duration",
        limits=("1ms", "1h"),
        default="5s",
        show_default=True,
        help="Give up connecting to the object store after this long (then retry).",
    ),
    _opt(
        "--read-timeout",
        env=["OBJECTSTORE_READ_TIMEOUT"],
        type="duration",
        limits=("1ms", "1h"),
        default="30s",
        show_default=True,
        help="Give up on a request when the object store is silent this long (then retry).",
    ),
    _opt(
        "--timeout",
        env=["OBJECTSTORE_TIMEOUT"],
        type="duration",
        limits=("1ms", "500h"),
        help="Stop COMMAND (SIGTERM, then SIGKILL after --kill-after) when it runs this long; exit 124. "
        "Under a Tekton step timeout (which SIGKILLs without warning) it is set for you: --tekton-timeout.",
    ),
    _opt(
        "--kill-after",
        env=["OBJECTSTORE_KILL_AFTER"],
        type="duration",
        limits=("1ms", "24h"),
        help="SIGKILL COMMAND's process group this long after a SIGTERM if it is still running "
        f"[default: half of --termination-grace, {TERMINATION_GRACE * KILL_AFTER_SHARE:g}s]; "
        "the rest of the grace is the final flush's.",
    ),
    _opt(
        "--termination-grace",
        env=["OBJECTSTORE_TERMINATION_GRACE"],
        type="duration",
        limits=("1ms", "24h"),
        default=f"{TERMINATION_GRACE:g}s",
        show_default=True,
        help="After a SIGTERM, finish the final flush within this (the pod's terminationGracePeriodSeconds).",
    ),
    _opt(
        "--tekton-timeout",
        env=["OBJECTSTORE_TEKTON_TIMEOUT"],
        choices=["auto", "off"],
        default="auto",
        show_default=True,
        help="auto: under Tekton's entrypoint with a step timeout, stop COMMAND early enough to store "
        "everything before the step's SIGKILL (unless --timeout is given); off: do not look.",
    ),
    _opt(
        "--signal-child-only",
        env=["OBJECTSTORE_SIGNAL_CHILD_ONLY"],
        is_flag=True,
        help="Forward signals to COMMAND alone instead of its whole process group.",
    ),
    *SECURITY_OPTIONS,
    _opt(
        "--quiet", "-q", env=["OBJECTSTORE_QUIET"], is_flag=True, help="Silence the wrapper's own info lines."
    ),
    _opt("--debug", env=["OBJECTSTORE_DEBUG"], is_flag=True, help="Print every upload and retry."),
)


# Every variable either command reads: an OBJECTSTORE_* variable not here is warned about (a typo).
VARIABLES = frozenset({*(v for o in OPTIONS for v in o.env), *READER_ONLY_VARIABLES})
