"""Object keys, built only from validated name components.

<prefix>/<pipelinerun>/<pipelinetask>/<result>.tgz
<prefix>/<pipelinerun>/<pipelinetask>/<step>/<result>.tgz   (Tekton step results)
<prefix>/<pipelinerun>/<pipelinetask>/<step>-log.tgz
<prefix>/<pipelinerun>/<pipelinetask>/logs/<step>/<chunk>.log
<prefix>/<pipelinerun>/<pipelinetask>/<step>-attempt-<N>-log.tgz (-summary.json, -manifest.json: retry N >= 2)
<prefix>/<pipelinerun>/<pipelinetask>/logs/<step>/attempt-<N>/<chunk>.log    (a retry: N >= 2)
<prefix>/_logs/<id>/<chunk>.log                               (the library's Logger, by default)
<LOGS_PATH>/<namespace>/<result>/<taskrun-uid>/step-<step>.log (--tekton-results-logs: plain text)

Attempts (Tekton retries start a new pod for the same TaskRun, so the same names): the first
attempt keeps the keys above exactly. Attempt N >= 2 writes its own ``<step>-attempt-<N>-*``
objects and chunks under ``logs/<step>/attempt-<N>/``, and ``<step>-log.tgz`` too (the latest
attempt's log is there, where Kubeflow Pipelines' UI reads it). A step name ending in
``-attempt-<digits>`` is refused, so these names never belong to another step.

``_logs`` cannot be a PipelineRun's name (Kubernetes names start with a letter or digit), so
the reader tells the library's logs from pipeline runs. Loggers before 0.2 wrote to
``<prefix>/logs/<id>/<chunk>.log``; the reader still finds those (``OLD_LIBRARY_LOGS``).
"""

from __future__ import annotations

from ..records import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from re import Pattern

CHUNK_DIGITS = 8
MAX_KEY_BYTES = 1024  # S3's limit on an object key (UTF-8)
LIBRARY_LOGS = "_logs"
OLD_LIBRARY_LOGS = "logs"  # read, never written

# A step's own objects, named relative to its task's prefix (the reader parses with the same words).
LOG_ARCHIVE = "log.tgz"  # <step>-log.tgz
SUMMARY = "summary.json"  # <step>-summary.json
MANIFEST = "manifest.json"  # <step>-manifest.json, stored last
STEP_OBJECTS = (LOG_ARCHIVE, SUMMARY, MANIFEST)
RESULT_EXT = ".tgz"
CHUNKS = "logs"  # logs/<step>/<chunk>.log
ATTEMPT = "attempt-"  # <step>-attempt-<N>-<what>, logs/<step>/attempt-<N>/
MAX_ATTEMPT = 10000
_STEP_OBJECT = (
    r"^(?P<step>.+?)(?:-attempt-(?P<n>[1-9][0-9]*))?-(?P<what>log\.tgz|summary\.json|manifest\.json)$"
)
_step_object: list[Pattern[str]] = []  # compiled on first use: the names are checked before COMMAND
# starts without re (and without unicodedata and urllib.parse for ASCII names without '%')


def step_object_name(step: str, what: str, attempt: int = 1) -> str:
    """``<step>-<what>`` (``<step>-attempt-<N>-<what>`` for attempt N >= 2): one of
    ``STEP_OBJECTS``, relative to the task prefix."""
    return f"{step}-{what}" if attempt <= 1 else f"{step}-{ATTEMPT}{attempt}-{what}"


def chunk_dir(step: str, attempt: int = 1) -> str:
    """``logs/<step>/`` (``logs/<step>/attempt-<N>/`` for attempt N >= 2), relative to the task prefix."""
    return f"{CHUNKS}/{step}/" if attempt <= 1 else f"{CHUNKS}/{step}/{ATTEMPT}{attempt}/"


def attempt_dir_of(name: str) -> int | None:
    """The attempt of a directory name under ``logs/<step>/`` (``attempt-2`` -> 2), or None."""
    if not name.startswith(ATTEMPT):
        return None
    digits = name[len(ATTEMPT) :]
    if not digits.isdigit() or digits.startswith("0") or int(digits) < 2:
        return None
    return int(digits)


def step_object_of(name: str) -> tuple[str, int, str] | None:
    """(step, attempt, what) of a task-level step object name (``build-attempt-2-log.tgz`` ->
    ``("build", 2, "log.tgz")``, ``build-log.tgz`` -> ``("build", 1, "log.tgz")``), or None."""
    if not _step_object:
        import re

        _step_object.append(re.compile(_STEP_OBJECT))
    match = _step_object[0].match(name)
    if match is None:
        return None
    attempt = int(match["n"]) if match["n"] else 1
    if attempt == 1 and match["n"]:
        return None  # attempt 1 never has the infix
    return match["step"], attempt, match["what"]


def step_of(name: str) -> str | None:
    """The step a task-level object name belongs to (``build-log.tgz`` -> ``build``), or None."""
    found = step_object_of(name)
    return found[0] if found is not None else None


def attempt_problem(step: str) -> str | None:
    """Why ``step`` cannot be a step name: it would read as a retry's objects of another step."""
    _, sep, digits = (step[:-1] if step.endswith("\n") else step).rpartition("-attempt-")
    if sep and digits and all("0" <= c <= "9" for c in digits):  # re's -attempt-[0-9]+$
        return "ends in -attempt-<digits>, which names a retry's objects"
    return None


def result_of(name: str) -> str | None:
    """The result a task-level object name holds (``digest.tgz`` -> ``digest``), or None."""
    if name.endswith(RESULT_EXT) and step_of(name) is None and len(name) > len(RESULT_EXT):
        return name[: -len(RESULT_EXT)]
    return None


def name_problem(value: str) -> str | None:
    """Why ``value`` cannot be one component of an object key, or None when it can."""
    if not value:
        return "is empty"
    if value in (".", ".."):
        return f"is {value!r}"
    folded = _nfkc(value)
    if not folded.strip():
        return "is only white space"
    if _has_control(value) or (not value.isascii() and _has_format(value)):
        return "contains control characters"
    if "/" in value or "\\" in value or "/" in folded or "\\" in folded:
        return "contains a path separator"
    if folded in (".", ".."):
        return f"normalises to {folded!r}"
    for decoded in {_percent_decoded(value), _percent_decoded(folded)} - {value, folded}:
        unfolded = _nfkc(decoded)  # also NFKC first, then decoding (fullwidth "%2e")
        separator = any(c in text for c in "/\\" for text in (decoded, unfolded))
        if separator or unfolded in (".", "..") or _has_control(decoded):
            return "percent-encodes a path separator, a control character, '.' or '..'"
    if len(value.encode("utf-8", "surrogateescape")) > 255:
        return "is longer than 255 bytes"
    return None


def _nfkc(value: str) -> str:
    """``value`` in Unicode normalisation form NFKC (ASCII is its own)."""
    if value.isascii():
        return value
    import unicodedata

    return unicodedata.normalize("NFKC", value)


def _has_control(value: str) -> bool:
    return any(c < "\x20" or c == "\x7f" for c in value)


def _has_format(value: str) -> bool:
    """A control, format or surrogate character (no ASCII character is a format or surrogate one)."""
    import unicodedata

    return any(unicodedata.category(c) in ("Cc", "Cf", "Cs") for c in value)


def _percent_decoded(value: str, rounds: int = 3) -> str:
    """``value`` URL-decoded until it stops changing (a layer that decodes once, or twice, must
    not see a separator or a dot-segment either)."""
    if "%" not in value:  # nothing to decode
        return value
    import urllib.parse

    for _ in range(rounds):
        decoded = urllib.parse.unquote(value, errors="surrogateescape")
        if decoded == value:
            break
        value = decoded
    return value


def check_name(what: str, value: str) -> str:
    """Return ``value`` or raise ValueError naming ``what`` and the problem."""
    problem = name_problem(value)
    if problem:
        raise ValueError(f"{what} {value!r} {problem}")
    return value


class _Names(Record):
    prefix: str
    pipelinerun: str
    pipelinetask: str
    step: str
    attempt: int = 1  # Tekton retries: the first attempt is 1


class KeysTooLong(ValueError):
    """The step's own keys (log, chunks, summary, manifest) would pass ``MAX_KEY_BYTES``."""


class NotSent(OSError):
    """An object the wrapper knows it cannot store: never sent, reported missing with this reason."""


class KeyTooLong(NotSent):
    """One object's key (a result's) passes ``MAX_KEY_BYTES``."""


def key_length_problem(key: str) -> str | None:
    size = len(key.encode("utf-8", "surrogateescape"))
    if size <= MAX_KEY_BYTES:
        return None
    return f"its key is {size} bytes, over S3's limit of {MAX_KEY_BYTES}"


class Layout(_Names):
    """Where a step's objects go; every name is checked (ValueError naming the bad one)."""

    __slots__ = ()

    def __new__(cls, prefix: str, pipelinerun: str, pipelinetask: str, step: str, attempt: int = 1) -> Layout:
        for part in prefix.split("/") if prefix else ():
            check_name("key prefix segment", part)
        check_name("pipelinerun", pipelinerun)
        check_name("pipelinetask", pipelinetask)
        check_name("step", step)
        problem = attempt_problem(step)
        if problem:
            raise ValueError(f"step {step!r} {problem}")
        if not 1 <= attempt <= MAX_ATTEMPT:
            raise ValueError(f"attempt {attempt} is not from 1 to {MAX_ATTEMPT}")
        layout = super().__new__(cls, prefix, pipelinerun, pipelinetask, step, attempt)
        own = (
            layout.chunk_key(10**CHUNK_DIGITS),  # a chunk number past the padding, the longest
            layout.log_archive_key(),
            layout.step_object_key("manifest.json"),
        )
        longest = max(own, key=lambda k: len(k.encode("utf-8", "surrogateescape")))
        problem = key_length_problem(longest)
        if problem:
            end = longest[-30:]
            raise KeysTooLong(f"the longest key of this step (ending {end!r}) is too long: {problem}")
        return layout

    @property
    def task_prefix(self) -> str:
        parts = [self.prefix] if self.prefix else []
        return "/".join([*parts, self.pipelinerun, self.pipelinetask]) + "/"

    def result_key(self, result: str) -> str:
        return f"{self.task_prefix}{check_name('result', result)}{RESULT_EXT}"

    def step_result_key(self, result: str) -> str:
        """A Tekton step result: ``<step>/<result>.tgz`` under the task."""
        return f"{self.task_prefix}{self.step}/{check_name('result', result)}{RESULT_EXT}"

    def log_archive_key(self) -> str:
        """This attempt's own log archive (``<step>-log.tgz`` for the first)."""
        return self.step_object_key(LOG_ARCHIVE)

    def log_archive_keys(self) -> tuple[str, ...]:
        """Where the log archive is stored: this attempt's own, and for a retry also
        ``<step>-log.tgz`` (the latest attempt's log, what Kubeflow Pipelines' UI reads)."""
        latest = f"{self.task_prefix}{step_object_name(self.step, LOG_ARCHIVE)}"
        own = self.log_archive_key()
        return (own,) if own == latest else (own, latest)

    def chunk_prefix(self) -> str:
        return f"{self.task_prefix}{chunk_dir(self.step, self.attempt)}"

    def chunk_key(self, seq: int) -> str:
        return f"{self.chunk_prefix()}{seq:0{CHUNK_DIGITS}d}.log"

    def step_object_key(self, suffix: str) -> str:
        """``<step>-<suffix>`` next to the log archive (one of ``STEP_OBJECTS``), this attempt's."""
        return f"{self.task_prefix}{step_object_name(self.step, suffix, self.attempt)}"


def results_log_key(logs_path: str, namespace: str, result: str, record: str, step: str) -> str:
    """Tekton Results' blob log of one step: ``<LOGS_PATH>/<namespace>/<result>/<record>/step-<step>.log``.

    Results' blob reader (``LOGS_TYPE=blob``) lists ``LOGS_PATH/<parent>/<result>/<record>/``
    (parent: the namespace; record: the TaskRun's UID) and concatenates every object under it.
    ``logs_path`` is ``LOGS_PATH`` without its leading ``/``. ValueError names a bad component.
    """
    parts = [p for p in logs_path.strip("/").split("/") if p]
    for part in parts:
        check_name("Tekton Results logs path segment", part)
    names = [
        check_name("namespace", namespace),
        check_name("Tekton Results result", result),
        check_name("TaskRun UID", record),
        check_name("step log name", f"step-{step}.log"),
    ]
    return "/".join([*parts, *names])


def library_log_prefix(key_prefix: str, log_id: str) -> str:
    """``<key_prefix>/_logs/<log_id>/``: where a library ``Logger`` stores its chunks by default."""
    parts = [p for p in key_prefix.strip("/").split("/") if p]
    for part in parts:
        check_name("key prefix segment", part)
    return "/".join([*parts, LIBRARY_LOGS, check_name("log id", log_id)]) + "/"


def chunk_seq(name: str) -> int | None:
    """The sequence number of a chunk file name ``00000012.log``; None for any other name."""
    stem, dot, ext = name.partition(".")
    if dot != "." or ext != "log" or not stem.isdigit():
        return None
    return int(stem)
