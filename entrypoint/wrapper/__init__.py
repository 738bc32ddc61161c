"""The wrapper's run: the supervisor (spawn, signals, reaping), the wiring, the final flush and its
outcome.
"""
