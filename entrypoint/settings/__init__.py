"""Settings resolved from the options before COMMAND starts: the step's Config, the store, credentials,
TLS, SSE.
"""
