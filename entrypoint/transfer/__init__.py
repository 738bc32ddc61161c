"""Transfer to the store: the upload queue, the one retry policy, and the payloads it sends."""
