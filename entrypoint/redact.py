"""Secrets the wrapper knows about, and the one place that blanks them out of its own messages.

Every secret the wrapper reads (secret key, session token, web identity token, SSE-C key,
credentials handed out by STS or instance metadata) is registered here as soon as it is read.
Every line the wrapper writes to stderr passes through ``redact``: even a secret that reaches a
message by accident (an exception text quoting a URL, say) is printed as ``***``, in every form
it can take there: as it is, as ``repr()`` and JSON escape it (``\\r\\n``), percent-encoded, as the
bytes' ``repr()``, and each of its lines alone (a line-wrapped token file).
"""

from __future__ import annotations

# _thread, not threading; re and urllib.parse only when a secret or a message needs them: this
# module loads before COMMAND starts, where they would cost milliseconds.
from _thread import allocate_lock

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from re import Pattern

MASK = "***"
_MIN_LENGTH = 4  # shorter values would blank out ordinary words

_lock = allocate_lock()
_secrets: tuple[str, ...] = ()  # every form of every secret, longest first
_pending: list[str] = []  # secrets added whose forms are not in _secrets yet
_QUERY_SECRET = (
    r"(?i)((?:WebIdentityToken|Token|X-Amz-Security-Token|X-Amz-Credential|Signature|SecretAccessKey)=)[^&\s]+"
)
_query_secret: list[Pattern[str]] = []  # compiled on first use


def add(value: str | bytes | None) -> None:
    """Remember ``value`` as a secret (ignored when empty or very short); its forms are worked
    out when a message is first redacted."""
    if value is None:
        return
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    text = text.strip()
    if len(text) < _MIN_LENGTH:
        return
    with _lock:
        _pending.append(text)


def _registered() -> tuple[str, ...]:
    """Every form of every secret added so far, longest first (so a secret containing another
    is blanked as a whole)."""
    global _secrets
    if _pending:
        with _lock:
            forms = set(_secrets)
            for text in _pending:
                forms.update(_forms(text))
            _pending.clear()
            _secrets = tuple(sorted(forms, key=len, reverse=True))
    return _secrets


_PIECE_MIN = 8  # a line of a multi-line secret shorter than this is left alone (it could be a word)


def _forms(text: str) -> set[str]:
    """``text`` and the ways a message can quote it (escaped, encoded, one line of it)."""
    import re
    import urllib.parse

    forms = {
        text,
        repr(text)[1:-1],
        *_json_forms(text),
        repr(text.encode("utf-8", "surrogateescape"))[2:-1],
        urllib.parse.quote(text, safe=""),
        urllib.parse.quote_plus(text, safe=""),
    }
    forms.update(p for p in re.split(r"[\x00-\x1f\x7f]+", text) if len(p.strip()) >= _PIECE_MIN)
    return {f for f in forms if len(f) >= _MIN_LENGTH}


def _json_forms(text: str) -> tuple[str, ...]:
    """``text`` inside JSON strings; json is loaded only when that differs from ``text``
    (printable ASCII without quote or backslash is its own JSON form: most keys)."""
    if all(" " <= c <= "~" and c not in '"\\' for c in text):
        return ()
    import json

    return json.dumps(text)[1:-1], json.dumps(text, ensure_ascii=False)[1:-1]


def redact(text: str) -> str:
    """``text`` with every registered secret, and secret-looking URL parameters, replaced."""
    return _mask(text, _registered())


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each of ``secrets`` (not the registered ones) replaced, by the same rules.

    For the library, whose secrets belong to one ``ObjectStoreConfig`` rather than the process.
    """
    values = {f for s in secrets if s and len(s.strip()) >= _MIN_LENGTH for f in _forms(s.strip())}
    return _mask(text, tuple(sorted(values, key=len, reverse=True)))


def _mask(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:  # longest first
        if secret in text:
            text = text.replace(secret, MASK)
    if "=" not in text:  # no URL parameter to blank out
        return text
    if not _query_secret:
        import re

        _query_secret.append(re.compile(_QUERY_SECRET))
    return _query_secret[0].sub(rf"\g<1>{MASK}", text)


def clear() -> None:
    """Forget every secret (tests of this module only)."""
    global _secrets
    with _lock:
        _secrets = ()
        _pending.clear()
