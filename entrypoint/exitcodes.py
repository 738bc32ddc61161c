"""Exit codes of the wrapper. COMMAND's own exit code is passed through unchanged."""

OK = 0
USAGE = 2  # bad option, bad configuration, bad identity: COMMAND was not started
UPLOAD_FAILED = 74  # COMMAND exited 0 but some objects are still missing after the final flush
TIMEOUT = 124  # the wrapper's own --timeout expired and COMMAND was stopped
INTERNAL = 125  # the wrapper itself failed unexpectedly
NOT_EXECUTABLE = 126  # COMMAND exists but cannot be executed
NOT_FOUND = 127  # COMMAND was not found
SIGNAL_BASE = 128  # COMMAND killed by signal N -> 128 + N
