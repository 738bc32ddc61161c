"""Tekton results: the files found, their archives queued for upload, offloading and provenance."""
