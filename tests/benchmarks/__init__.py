"""The speed benchmark of issue 8 (not unit tests: pytest collects nothing here but test_*.py)."""
