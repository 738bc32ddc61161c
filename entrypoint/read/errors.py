"""Exit codes of ``tekton-uploader-read`` and its one error type.

A followed step's own exit code is passed through by ``logs --follow``; the codes below are the
reader's own outcomes.
"""

from __future__ import annotations

from ..store import StoreError

OK = 0
NOT_FOUND = 1  # no such run, task, step log, result or bucket
USAGE = 2  # bad option or argument
STORE = 3  # the store refused (credentials, permissions) or could not be reached after retries
INTEGRITY = 4  # an object does not match the manifest, an archive is corrupt, a log has a gap
OUTPUT = 5  # the output file (-o) cannot be written
GONE = 6  # logs --follow: the step stored nothing new for --stale-after (its wrapper seems gone)
SIGPIPE_EXIT = 141  # the reader of our output went away (like `cat | head`)

# A fix to suggest for each permanent store error, worded for reading.
_FIXES = {
    "AccessDenied": "check that the credentials may list and read the bucket",
    "AllAccessDisabled": "check the bucket's access settings",
    "InvalidAccessKeyId": "check --access-key / OBJECTSTORE_ACCESS_KEY",
    "SignatureDoesNotMatch": "check --secret-key / OBJECTSTORE_SECRET_KEY",
    "InvalidToken": "check --session-token / OBJECTSTORE_SESSION_TOKEN",
    "ExpiredToken": "refresh the session token",
    "AuthorizationHeaderMalformed": "check --region",
    "InvalidRegion": "check --region",
    "TLS": "check the server certificate, or SSL_CERT_FILE for a private CA",
}


class ReadError(Exception):
    """A failure to report in one line on stderr, with the exit code to use."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def from_store_error(exc: StoreError, where: str, attempts: int = 1) -> ReadError:
    """Turn a store failure into a one-line message naming the store and the fix."""
    if exc.code == "NoSuchBucket":
        return ReadError(
            f"{where}: the bucket does not exist; check --bucket / OBJECTSTORE_BUCKET", NOT_FOUND
        )
    if exc.code in _FIXES:
        return ReadError(f"{where} refused: {exc.code}; {_FIXES[exc.code]}", STORE)
    if exc.transient:
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        return ReadError(
            f"cannot reach {where}{tries}: {exc}; check --endpoint and the network (--retries for more)",
            STORE,
        )
    return ReadError(f"{where}: {exc}", STORE)
