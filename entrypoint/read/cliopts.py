"""The reader's help texts and its options beyond the store's (which are the wrapper's)."""

from __future__ import annotations

import click

from ..formats.layout import MAX_ATTEMPT
from ..options.store import READER_ONLY_VARIABLES, READER_SECURITY_OPTIONS, STORE_OPTIONS, key_prefix_option
from ..options.table import Option, env_option

PROG = "tekton-uploader-read"

EPILOG = """\b
Store options go before or after COMMAND: tekton-uploader-read --endpoint URL logs RUN/TASK.
Library logs (the Python Logger's, under <prefix>/_logs/): tekton-uploader-read library-logs.
\b
Exit codes: 0 done; 1 no such run, task, step log, result or bucket (the message names what
exists nearby); 2 bad usage; 3 the store refused (credentials) or could not be reached after
--retries; 4 an object does not match its manifest, an archive is corrupt or a log has a gap;
5 the -o file cannot be written; 6 logs --follow: the step stored nothing new for --stale-after
(its wrapper seems gone). logs --follow exits with the step's recorded exit code.
"""

SUB_EPILOG = f"Store options (--endpoint, --bucket, credentials, ...): see {PROG} --help."

attempt_option = click.option(
    "--attempt",
    type=click.IntRange(1, MAX_ATTEMPT),
    metavar="N",
    help="Which attempt of a step Tekton retried (1 is the first). [default: the latest]",
)

retries_option = env_option(
    "--retries",
    env=list(READER_ONLY_VARIABLES),
    type=click.IntRange(0, 100),
    default=4,
    show_default=True,
    help="Retries of a store request that failed for a transient reason (network, 5xx, throttling).",
)


# Where the objects are and how to reach them: the group's options, shown once in its --help,
# and accepted after the subcommand too (hidden there; a value given there wins).
READER_OPTIONS: tuple[Option, ...] = (
    *STORE_OPTIONS,
    *READER_SECURITY_OPTIONS,
    key_prefix_option,
    retries_option,
)
READER_NAMES = tuple(o.name for o in READER_OPTIONS)
