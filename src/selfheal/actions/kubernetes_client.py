"""The Kubernetes adapter: the only module that imports the official `kubernetes` client.

It talks to any API server over HTTP(S) (the twin, or a real cluster through a kubeconfig
or, in a pod, the in-cluster configuration), never through a shell. Names are checked as
DNS-1123 labels before they reach a URL, and the client's exceptions are translated here:
409 and 5xx and connection failures are temporary (retry), 404/403/422 and a failed TLS
handshake (a certificate the CA did not sign) are permanent.

In a pod, the API server's address comes from `KUBERNETES_SERVICE_HOST`/`_PORT` and the
service account's token, CA certificate and namespace from the files Kubernetes mounts in
`/var/run/secrets/kubernetes.io/serviceaccount/`, as the official client's in-cluster loader
reads them (it does the loading here). The token is a bound token that expires (an hour by
default) and that the kubelet replaces in the file well before then; the official loader
re-reads it once a minute by its own clock, this adapter as soon as the file changes
(`_RotatingToken`), so a rotated token is used from the next request on.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config import incluster_config

from selfheal.domain.errors import ConfigError, PermanentError, TemporaryError

_log = logging.getLogger(__name__)
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_MERGE_PATCH = "application/merge-patch+json"
# Where Kubernetes mounts a pod's service-account token, CA certificate and namespace.
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


def check_name(value: object, *, field: str) -> str:
    """Return `value` if it is a valid Kubernetes name (DNS-1123 label), else refuse it."""
    if not isinstance(value, str) or len(value) > 63 or not _DNS_LABEL.match(value):
        raise PermanentError(f"{field} {value!r} is not a valid Kubernetes name (DNS-1123 label)")
    return value


@dataclass(frozen=True, slots=True)
class DeploymentState:
    """What the controller needs to know of a Deployment."""

    name: str
    namespace: str
    replicas: int
    ready: int
    available: int
    updated: int
    generation: int
    observed_generation: int
    # The version of the object this state was read from: a write that names it is refused
    # (409) if anyone changed the object since, so no write rests on a stale read.
    resource_version: str = ""


class ConflictError(TemporaryError):
    """The object changed since it was read (409): read it again before writing."""


class KubernetesCluster:
    """Reads and changes workloads through the Kubernetes API.

    Configured by one of: a kubeconfig file, `in_cluster` (the pod's service account; its
    files in `service_account_dir`, the API's address in `environ`), or a bare `host` (the
    twin, plain HTTP).
    """

    def __init__(
        self,
        *,
        kubeconfig: Path | None = None,
        in_cluster: bool = False,
        host: str | None = None,
        request_timeout: float = 10.0,
        service_account_dir: Path = SERVICE_ACCOUNT_DIR,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        if sum((kubeconfig is not None, in_cluster, host is not None)) != 1:
            raise ConfigError(
                "the Kubernetes cluster needs exactly one of a kubeconfig, the in-cluster "
                "configuration or a host"
            )
        configuration = client.Configuration()
        # The namespace this controller's service account lives in, when it runs in a pod.
        self.namespace: str | None = None
        if kubeconfig is not None:
            try:
                config.load_kube_config(
                    config_file=str(kubeconfig), client_configuration=configuration
                )
            except (config.ConfigException, OSError) as exc:
                raise ConfigError(f"cannot use kubeconfig {kubeconfig}: {exc}") from exc
        elif in_cluster:
            self.namespace = _load_in_cluster(
                configuration,
                directory=service_account_dir,
                environ=os.environ if environ is None else environ,
            )
        else:
            configuration.host = str(host)
        configuration.retries = False
        self._timeout = request_timeout
        self._api = client.ApiClient(configuration)
        self._apps = client.AppsV1Api(self._api)
        self._core = client.CoreV1Api(self._api)
        self.host = str(configuration.host)

    def close(self) -> None:
        self._api.close()

    def deployment(self, namespace: str, name: str) -> DeploymentState:
        check_name(namespace, field="namespace")
        check_name(name, field="deployment")
        found = self._call(self._apps.read_namespaced_deployment, name, namespace)
        status = found.status
        return DeploymentState(
            name=name,
            namespace=namespace,
            replicas=int(found.spec.replicas or 0),
            ready=int(status.ready_replicas or 0),
            available=int(status.available_replicas or 0),
            updated=int(status.updated_replicas or 0),
            generation=int(found.metadata.generation or 0),
            observed_generation=int(status.observed_generation or 0),
            resource_version=str(found.metadata.resource_version or ""),
        )

    def node_count(self) -> int:
        """How many nodes the cluster has (the whole a node blast-radius share is of)."""
        return len(self._call(self._core.list_node).items)

    def scale(self, namespace: str, name: str, replicas: int, *, resource_version: str = "") -> int:
        """Set a deployment's replicas through its scale subresource; return the result.

        With `resource_version` (from the read the decision rests on), the write is refused
        with ConflictError if the deployment changed since.
        """
        check_name(namespace, field="namespace")
        check_name(name, field="deployment")
        if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
            raise PermanentError(f"replicas must be a non-negative integer, got {replicas!r}")
        patch: dict[str, Any] = {"spec": {"replicas": replicas}}
        if resource_version:
            patch["metadata"] = {"resourceVersion": resource_version}
        scaled = self._call(
            self._apps.patch_namespaced_deployment_scale,
            name,
            namespace,
            patch,
            _content_type=_MERGE_PATCH,
        )
        return int(scaled.spec.replicas)

    def _call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, _request_timeout=self._timeout, **kwargs)
        except ApiException as exc:
            if not exc.status:
                # The client reports a failed TLS handshake (a certificate that the CA did
                # not sign, or for another name) as status 0: no retry mends that.
                reason = " ".join(str(exc.reason).split())
                raise PermanentError(
                    f"no TLS connection to the Kubernetes API at {self.host}: {reason}"
                ) from exc
            detail = f"Kubernetes API answered {exc.status} {exc.reason}"
            if exc.status == 409:
                raise ConflictError(f"{detail}: {_message(exc)}", delay=0.0) from exc
            if exc.status == 429 or (exc.status or 0) >= 500:
                raise TemporaryError(detail, delay=1.0) from exc
            raise PermanentError(f"{detail}: {_message(exc)}") from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise TemporaryError(
                f"cannot reach the Kubernetes API at {self.host}: {exc}", delay=1.0
            ) from exc


def _load_in_cluster(
    configuration: client.Configuration, *, directory: Path, environ: Mapping[str, str]
) -> str | None:
    """Configure for the pod's service account; return its namespace (None if not mounted)."""
    token_file = directory / "token"
    loader = incluster_config.InClusterConfigLoader(
        token_filename=str(token_file),
        cert_filename=str(directory / "ca.crt"),
        try_refresh_token=False,  # the rotation is `_RotatingToken`'s, below
        environ=environ,
    )
    try:
        loader.load_and_set(configuration)
    except (config.ConfigException, OSError) as exc:
        raise ConfigError(
            f"cannot use the in-cluster configuration (cluster.in_cluster): {exc} "
            f"(KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set, and "
            f"{directory} must hold the service account's token and ca.crt: is this a pod "
            "with automountServiceAccountToken?)"
        ) from exc
    # The client's stub types the hook as None; it calls any callable it is given.
    configuration.refresh_api_key_hook = _RotatingToken(token_file)  # type: ignore[assignment]
    try:
        return (directory / "namespace").read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


class _RotatingToken:
    """The client's refresh hook: re-reads the token file whenever it has changed.

    Called before every request. One `stat` tells whether the kubelet swapped the file (it
    replaces it whole: a new inode or modification time); only then is it read. A token
    that cannot be read at that moment (mid-swap, gone) leaves the last one in use: it is
    still valid for a while, and the next request looks again.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._seen: tuple[int, int, int] | None = None
        self._lock = threading.Lock()

    def __call__(self, configuration: client.Configuration) -> None:
        with self._lock:
            try:
                status = self._path.stat()
            except OSError as exc:
                _log.warning("cannot look at the service-account token %s: %s", self._path, exc)
                return
            seen = (status.st_ino, status.st_mtime_ns, status.st_size)
            if seen == self._seen:
                return
            try:
                token = self._path.read_text(encoding="utf-8").strip()
            except OSError as exc:
                _log.warning("cannot read the service-account token %s: %s", self._path, exc)
                return
            if not token:
                return
            configuration.api_key["BearerToken"] = f"Bearer {token}"
            self._seen = seen


def _message(exc: ApiException) -> str:
    try:
        body = json.loads(exc.body or "{}")
    except ValueError:
        return str(exc.body)[:200]
    return str(body.get("message", ""))[:300]
