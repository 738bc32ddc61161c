"""Secrets the wrapper knows about, and the one place that blanks them out of its own messages.

Every secret the wrapper reads (secret key, session token, web identity token, SSE-C key,
credentials handed out by STS or instance metadata) is registered here as soon as it is read.
Every line the wrapper writes to stderr passes through ``redact``: even a secret that reaches a
message by accident (an exception text quoting a URL, say) is printed as ``***``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable

MASK = "***"
_MIN_LENGTH = 4  # shorter values would blank out ordinary words

_lock = threading.Lock()
_secrets: tuple[str, ...] = ()
_QUERY_SECRET = re.compile(
    r"(?i)((?:WebIdentityToken|Token|X-Amz-Security-Token|X-Amz-Credential|Signature|SecretAccessKey)=)[^&\s]+"
)


def add(value: str | bytes | None) -> None:
    """Remember ``value`` as a secret (ignored when empty or very short)."""
    if value is None:
        return
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    text = text.strip()
    if len(text) < _MIN_LENGTH:
        return
    global _secrets
    with _lock:
        if text not in _secrets:
            # longest first, so a secret containing another is blanked as a whole
            _secrets = tuple(sorted((*_secrets, text), key=len, reverse=True))


def redact(text: str) -> str:
    """``text`` with every registered secret, and secret-looking URL parameters, replaced."""
    return _mask(text, _secrets)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each of ``secrets`` (not the registered ones) replaced, by the same rules.

    For the library, whose secrets belong to one ``ObjectStoreConfig`` rather than the process.
    """
    values = {s.strip() for s in secrets if s and len(s.strip()) >= _MIN_LENGTH}
    return _mask(text, tuple(sorted(values, key=len, reverse=True)))


def _mask(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:  # longest first
        if secret in text:
            text = text.replace(secret, MASK)
    return _QUERY_SECRET.sub(rf"\g<1>{MASK}", text)


def clear() -> None:
    """Forget every secret (tests of this module only)."""
    global _secrets
    with _lock:
        _secrets = ()
