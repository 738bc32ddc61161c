"""What the environment says beyond the options: kfp-tekton's endpoint variables, whether we run
inside a pod or container (where the embedded ``./objectstore`` default would be lost with it),
and ``OBJECTSTORE_*`` variables that no option reads (a typo stores nothing where it should).

Inside a pod or container when any of these holds (the first found is named in the message):

- ``KUBERNETES_SERVICE_HOST`` is set: the kubelet sets it in every container of every pod;
- ``/tekton/run`` is a directory: Tekton mounts it (volume ``tekton-internal-run``, its
  entrypoint's step ordering and exit files) into every step container, so a Tekton step is
  recognised whatever its environment says;
- ``TEKTON_UPLOADER_IN_IMAGE`` is ``1``: set by this project's ``Containerfile``, so a plain
  ``podman run IMAGE ...`` is recognised (and so is every image built ``FROM`` it).
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Optional

    from _typeshed import StrPath


IN_IMAGE = "TEKTON_UPLOADER_IN_IMAGE"
TEKTON_RUN_DIR = "tekton/run"  # under the root: /tekton/run


def kfp_endpoint(environ: Mapping[str, str]) -> Optional[str]:
    """kfp-tekton's copy-artifacts settings as an endpoint URL: ``ARTIFACT_ENDPOINT``
    (``minio-service.kubeflow:9000``) with ``ARTIFACT_ENDPOINT_SCHEME`` (``http://``, the
    default, or ``https://``); None when ``ARTIFACT_ENDPOINT`` is not set."""
    endpoint = (environ.get("ARTIFACT_ENDPOINT") or "").strip()
    if not endpoint:
        return None
    if "://" in endpoint:
        return endpoint
    scheme = (environ.get("ARTIFACT_ENDPOINT_SCHEME") or "http://").strip()
    scheme = scheme if scheme.endswith("://") else scheme.rstrip(":/") + "://"
    return scheme + endpoint


def container_reason(environ: Mapping[str, str], root: StrPath = "/") -> Optional[str]:
    """Why we seem to run in a pod or container (see the module docstring), or None."""
    if environ.get("KUBERNETES_SERVICE_HOST"):
        return "KUBERNETES_SERVICE_HOST is set: a Kubernetes pod"
    run_dir = os.path.join(root, TEKTON_RUN_DIR)
    if os.path.isdir(run_dir):
        return f"{run_dir} exists: a Tekton step"
    if environ.get(IN_IMAGE) == "1":
        return f"{IN_IMAGE}=1: the tekton-uploader image"
    return None


def no_endpoint_problem(environ: Mapping[str, str], root: StrPath = "/") -> Optional[str]:
    """The one-line error when no endpoint is set where ``./objectstore`` would be lost, or None."""
    reason = container_reason(environ, root)
    if reason is None:
        return None
    return (
        f"--endpoint: not set inside a container ({reason}); the objects would be stored in "
        "./objectstore and lost with the container. Set --endpoint https://HOST[:PORT] (or "
        "OBJECTSTORE_ENDPOINT), or --endpoint file:///DIR to store into a directory on purpose"
    )


def unknown_variables(environ: Mapping[str, str], known: Iterable[str]) -> list[str]:
    """One warning per ``OBJECTSTORE_*`` variable no option reads, with the closest known name."""
    names = set(known)
    unknown = sorted(v for v in environ if v.startswith("OBJECTSTORE_") and v not in names)
    if not unknown:
        return []
    import difflib  # only when there is something to say

    ours = sorted(n for n in names if n.startswith("OBJECTSTORE_"))
    warnings = []
    for name in unknown:
        close = difflib.get_close_matches(name, ours, n=1, cutoff=0.8)
        hint = f"; did you mean {close[0]}?" if close else "; see --help for the variables"
        warnings.append(f"{name} is set but no option reads it (it is ignored){hint}")
    return warnings
