"""The Kubernetes adapter: the only module that imports the official `kubernetes` client.

It talks to any API server over HTTP(S) (the twin, or a real cluster through a kubeconfig),
never through a shell. Names are checked as DNS-1123 labels before they reach a URL, and the
client's exceptions are translated here: 409 and 5xx and connection failures are temporary
(retry), 404/403/422 are permanent.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from selfheal.domain.errors import ConfigError, PermanentError, TemporaryError

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_MERGE_PATCH = "application/merge-patch+json"


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
    """Reads and changes workloads through the Kubernetes API."""

    def __init__(
        self,
        *,
        kubeconfig: Path | None = None,
        host: str | None = None,
        request_timeout: float = 10.0,
    ) -> None:
        configuration = client.Configuration()
        if kubeconfig is not None:
            try:
                config.load_kube_config(
                    config_file=str(kubeconfig), client_configuration=configuration
                )
            except (config.ConfigException, OSError) as exc:
                raise ConfigError(f"cannot use kubeconfig {kubeconfig}: {exc}") from exc
        elif host is not None:
            configuration.host = host
        else:
            raise ConfigError("the Kubernetes cluster needs a kubeconfig or a host")
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


def _message(exc: ApiException) -> str:
    try:
        body = json.loads(exc.body or "{}")
    except ValueError:
        return str(exc.body)[:200]
    return str(body.get("message", ""))[:300]
