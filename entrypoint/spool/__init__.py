"""Capture of COMMAND's output into chunks on disk, within the spool budget, and the log archive."""
