"""tekton-uploader: make a Tekton step's logs and results durable in S3-compatible storage."""

__version__ = "0.1.0"
