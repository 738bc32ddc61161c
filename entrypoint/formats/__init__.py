"""Stored formats, written by the wrapper and the library and read by the reader: object keys,
archives, the manifest.
"""
