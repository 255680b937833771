"""The Kubernetes API subset the twin serves over HTTP (an ASGI app).

Enough for the real kubectl and the official clients: discovery, get/list (with label and
field selectors, server-side Tables, and watch), patch in all three formats, update, the
Deployment `scale` subresource, pod deletion, node cordoning, events. Errors are `Status`
objects with the codes a real API server uses. `?dryRun=All` validates without changing
anything.

Handlers are `async` so they all run on the event loop that also advances the model: the
simulation is never touched from two threads.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from selfheal.twin import patching, selectors
from selfheal.twin.cluster import REVISION_ANNOTATION, Cluster
from selfheal.twin.kube import discovery, objects, tables, validation
from selfheal.twin.kube.versions import Versions
from selfheal.twin.simulation import Simulation

JsonObject = dict[str, Any]
_MAX_BODY = 1 << 20
_WATCH_POLL_S = 0.2
_MERGE_KEYS = {
    "spec.template.spec.containers": "name",
    "spec.template.spec.initContainers": "name",
    "spec.template.spec.containers.env": "name",
    "spec.template.spec.containers.ports": "containerPort",
    "spec.template.spec.containers.volumeMounts": "mountPath",
    "spec.template.spec.volumes": "name",
    "spec.template.spec.imagePullSecrets": "name",
    "spec.containers": "name",
    "spec.containers.env": "name",
    "spec.containers.ports": "containerPort",
    "spec.volumes": "name",
    "spec.taints": "key",
    "status.conditions": "type",
}


class TwinHandle(Protocol):
    """What the API needs of the running twin: the model, brought up to date on demand."""

    simulation: Simulation

    def sync(self) -> None: ...


class ApiError(Exception):
    """An error answered as a Kubernetes Status object."""

    def __init__(
        self, code: int, reason: str, message: str, *, details: JsonObject | None = None
    ) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def response(self) -> JSONResponse:
        body: JsonObject = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return JSONResponse(body, status_code=self.code)


def _not_found(resource: str, name: str, group: str = "") -> ApiError:
    qualified = f"{resource}.{group}" if group else resource
    return ApiError(
        404,
        "NotFound",
        f'{qualified} "{name}" not found',
        details={"name": name, "group": group, "kind": resource},
    )


def _invalid(kind: str, name: str, group: str, causes: list[validation.Cause]) -> ApiError:
    """422 Invalid; `kind` is the Kind (`Deployment`), as kubectl prints it."""
    summary = ", ".join(f"{cause.field}: {cause.message}" for cause in causes)
    qualified = f"{kind}.{group}" if group else kind
    return ApiError(
        422,
        "Invalid",
        f'{qualified} "{name}" is invalid: {summary}',
        details={
            "name": name,
            "group": group,
            "kind": kind,
            "causes": [
                {"reason": c.reason, "message": c.message, "field": c.field} for c in causes
            ],
        },
    )


@dataclass(frozen=True)
class _Kind:
    kind: str
    group: str
    render_all: Callable[[Cluster], list[JsonObject]]


_KINDS: dict[str, _Kind] = {
    "pods": _Kind("Pod", "", lambda c: [objects.pod(c, p) for p in c.pods.values()]),
    "nodes": _Kind("Node", "", lambda c: [objects.node(c, n) for n in c.nodes.values()]),
    "events": _Kind("Event", "", lambda c: [objects.event(c, e) for e in c.events]),
    "namespaces": _Kind("Namespace", "", lambda c: [objects.namespace(c)]),
    "deployments": _Kind(
        "Deployment", "apps", lambda c: [objects.deployment(c, d) for d in c.deployments.values()]
    ),
    "replicasets": _Kind(
        "ReplicaSet", "apps", lambda c: [objects.replicaset(c, r) for r in c.replicasets.values()]
    ),
}
_CORE = {"pods", "nodes", "events", "namespaces"}
_APPS = {"deployments", "replicasets"}
_CLUSTER_SCOPED = {"nodes", "namespaces"}


class KubeApi:
    """Routes and handlers; one instance per running twin."""

    def __init__(self, twin: TwinHandle) -> None:
        self.twin = twin
        self.versions = Versions()

    @property
    def cluster(self) -> Cluster:
        return self.twin.simulation.cluster

    def routes(self) -> list[Route]:
        get = ["GET"]
        item = ["GET", "PATCH", "PUT", "DELETE"]
        return [
            Route("/version", self._static(lambda: discovery.SERVER_VERSION), methods=get),
            Route("/api", self._static(discovery.core_versions), methods=get),
            Route("/apis", self._static(discovery.group_list), methods=get),
            Route("/api/v1", self._static(discovery.core_resources), methods=get),
            Route("/apis/apps", self._static(discovery.apps_group), methods=get),
            Route("/apis/apps/v1", self._static(discovery.apps_resources), methods=get),
            Route("/api/v1/namespaces/{namespace}/{plural}/{name}", self._item, methods=item),
            Route("/api/v1/namespaces/{namespace}/{plural}", self._collection, methods=get),
            Route("/api/v1/{plural}/{name}", self._item, methods=item),
            Route("/api/v1/{plural}", self._collection, methods=get),
            Route(
                "/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale",
                self._scale,
                methods=["GET", "PATCH", "PUT"],
            ),
            Route(
                "/apis/apps/v1/namespaces/{namespace}/deployments/{name}/status",
                self._deployment_status,
                methods=get,
            ),
            Route("/apis/apps/v1/namespaces/{namespace}/{plural}/{name}", self._item, methods=item),
            Route("/apis/apps/v1/namespaces/{namespace}/{plural}", self._collection, methods=get),
            Route("/apis/apps/v1/{plural}", self._collection, methods=get),
        ]

    @staticmethod
    def _static(document: Callable[[], JsonObject]) -> Callable[[Request], Any]:
        async def handler(_request: Request) -> Response:
            return JSONResponse(document())

        return handler

    # ---- reading ----------------------------------------------------------------------
    def _kind(self, request: Request) -> tuple[str, _Kind]:
        plural = request.path_params["plural"]
        group_plurals = _APPS if request.url.path.startswith("/apis/apps/") else _CORE
        if plural not in group_plurals:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        namespaced_path = "namespace" in request.path_params
        if namespaced_path and plural in _CLUSTER_SCOPED:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return plural, _KINDS[plural]

    def _all(self, plural: str) -> list[JsonObject]:
        kind = _KINDS[plural]
        items = kind.render_all(self.cluster)
        for obj in items:
            self.versions.stamp(obj)
        self.versions.forget_missing(kind.kind, items)
        return items

    def _find(self, plural: str, name: str, namespace: str | None) -> JsonObject:
        if namespace is None and plural not in _CLUSTER_SCOPED:
            # A namespaced resource asked for without a namespace: no such path on a server.
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if namespace is not None and namespace != self.cluster.namespace:
            raise _not_found(plural, name, _KINDS[plural].group)
        for obj in self._all(plural):
            if obj["metadata"]["name"] == name:
                return obj
        raise _not_found(plural, name, _KINDS[plural].group)

    async def _collection(self, request: Request) -> Response:
        try:
            self.twin.sync()
            plural, kind = self._kind(request)
            matches = self._matcher(request)
            namespace = request.path_params.get("namespace")
            if request.query_params.get("watch") in {"true", "1"}:
                return self._watch(request, plural, namespace, matches)
            items = [
                obj
                for obj in self._all(plural)
                if (namespace is None or obj["metadata"].get("namespace") == namespace)
                and matches(obj)
            ]
            items.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
            return self._respond_list(request, kind, items)
        except ApiError as error:
            return error.response()

    def _matcher(self, request: Request) -> Callable[[JsonObject], bool]:
        try:
            labels = selectors.parse_label_selector(request.query_params.get("labelSelector", ""))
            fields = selectors.parse_field_selector(request.query_params.get("fieldSelector", ""))
        except selectors.SelectorError as exc:
            raise ApiError(400, "BadRequest", f"unable to parse requirement: {exc}") from exc
        return lambda obj: (
            labels.matches(obj["metadata"].get("labels") or {}) and fields.matches(obj)
        )

    def _respond_list(self, request: Request, kind: _Kind, items: list[JsonObject]) -> Response:
        if _wants_table(request):
            return JSONResponse(
                tables.table(
                    kind=kind.kind,
                    items=items,
                    now=self.twin.simulation.now(),
                    resource_version=self.versions.current,
                    include_object=request.query_params.get("includeObject", "Metadata"),
                )
            )
        api_version = "apps/v1" if kind.group == "apps" else "v1"
        return JSONResponse(
            {
                "kind": f"{kind.kind}List",
                "apiVersion": api_version,
                "metadata": {"resourceVersion": self.versions.current},
                "items": items,
            }
        )

    def _watch(
        self,
        request: Request,
        plural: str,
        namespace: str | None,
        matches: Callable[[JsonObject], bool],
    ) -> Response:
        since = request.query_params.get("resourceVersion")
        timeout = min(float(request.query_params.get("timeoutSeconds", 300) or 300), 1800.0)

        def snapshot() -> dict[str, JsonObject]:
            return {
                obj["metadata"]["uid"]: obj
                for obj in self._all(plural)
                if (namespace is None or obj["metadata"].get("namespace") == namespace)
                and matches(obj)
            }

        initial_events = request.query_params.get("sendInitialEvents") == "true"
        kind = _KINDS[plural]

        async def events() -> AsyncIterator[bytes]:
            seen = snapshot()
            for obj in seen.values():
                version = int(obj["metadata"]["resourceVersion"])
                if initial_events or not since or since == "0" or version > int(since):
                    change = "ADDED" if initial_events or not since or since == "0" else "MODIFIED"
                    yield _watch_line(change, obj)
            if initial_events:
                # Watch-list clients wait for this bookmark before trusting their cache.
                yield _watch_line(
                    "BOOKMARK",
                    {
                        "kind": kind.kind,
                        "apiVersion": "apps/v1" if kind.group == "apps" else "v1",
                        "metadata": {
                            "resourceVersion": self.versions.current,
                            "annotations": {"k8s.io/initial-events-end": "true"},
                        },
                    },
                )
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                await asyncio.sleep(_WATCH_POLL_S)
                self.twin.sync()
                current = snapshot()
                for uid, obj in current.items():
                    previous = seen.get(uid)
                    if previous is None:
                        yield _watch_line("ADDED", obj)
                    elif (
                        previous["metadata"]["resourceVersion"]
                        != obj["metadata"]["resourceVersion"]
                    ):
                        yield _watch_line("MODIFIED", obj)
                for uid, obj in seen.items():
                    if uid not in current:
                        yield _watch_line("DELETED", obj)
                seen = current

        return StreamingResponse(events(), media_type="application/json")

    async def _item(self, request: Request) -> Response:
        try:
            self.twin.sync()
            plural, kind = self._kind(request)
            name = request.path_params["name"]
            namespace = request.path_params.get("namespace")
            current = self._find(plural, name, namespace)
            if request.method == "GET":
                if _wants_table(request):
                    return self._respond_list(request, kind, [current])
                return JSONResponse(current)
            if request.method == "DELETE":
                return self._delete(plural, current, request)
            changed = await self._changed(request, current)
            return self._commit(plural, current, changed, dry_run=_dry_run(request))
        except ApiError as error:
            return error.response()

    # ---- writing ----------------------------------------------------------------------
    async def _changed(self, request: Request, current: JsonObject) -> JsonObject:
        """The object as the request would leave it (patched or replaced), not yet applied."""
        body = await request.body()
        if len(body) > _MAX_BODY:
            raise ApiError(413, "RequestEntityTooLarge", "request body too large")
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        if content_type == "application/apply-patch+yaml":
            raise ApiError(
                415,
                "UnsupportedMediaType",
                "server-side apply is not supported by the twin; use a merge, "
                "strategic-merge or JSON patch",
            )
        try:
            document = json.loads(body) if body else None
        except json.JSONDecodeError as exc:
            raise ApiError(400, "BadRequest", f"invalid JSON in request body: {exc}") from exc
        changed: Any
        try:
            if request.method == "PUT":
                if not isinstance(document, dict):
                    raise ApiError(400, "BadRequest", "request body must be a JSON object")
                changed = document
            elif content_type == "application/merge-patch+json":
                changed = patching.apply_merge_patch(current, document)
            elif content_type == "application/strategic-merge-patch+json":
                changed = patching.apply_strategic_merge_patch(
                    current, document, merge_keys=_MERGE_KEYS
                )
            elif content_type == "application/json-patch+json":
                changed = patching.apply_json_patch(current, document)
            else:
                raise ApiError(
                    415,
                    "UnsupportedMediaType",
                    f"the body of the request was in an unknown format - accepted "
                    f"media types include: application/json-patch+json, "
                    f"application/merge-patch+json, "
                    f"application/apply-patch+yaml, "
                    f"application/strategic-merge-patch+json (got {content_type!r})",
                )
        except patching.PatchError as exc:
            raise ApiError(
                422 if request.method == "PATCH" else 400,
                "Invalid" if request.method == "PATCH" else "BadRequest",
                f"the patch could not be applied: {exc}",
            ) from exc
        if not isinstance(changed, dict) or not isinstance(changed.get("metadata"), dict):
            raise ApiError(422, "Invalid", "the result of the change is not a valid object")
        wanted = changed["metadata"].get("resourceVersion")
        if wanted and wanted != current["metadata"]["resourceVersion"]:
            kind = _KINDS.get(_plural_of(current["kind"]))
            group = kind.group if kind else ""
            qualified = _plural_of(current["kind"]) + (f".{group}" if group else "")
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {qualified} "{current["metadata"]["name"]}": '
                "the object has been modified; please apply your changes to the latest version "
                "and try again",
                details={
                    "name": current["metadata"]["name"],
                    "group": group,
                    "kind": _plural_of(current["kind"]),
                },
            )
        return changed

    def _commit(
        self, plural: str, current: JsonObject, changed: JsonObject, *, dry_run: bool
    ) -> Response:
        name = current["metadata"]["name"]
        now = self.twin.simulation.elapsed
        if plural == "deployments":
            causes = validation.deployment(changed, current)
            if causes:
                raise _invalid("Deployment", name, "apps", causes)
            if not dry_run:
                stored = _stored_deployment(changed)
                stored["metadata"].update(name=name, namespace=self.cluster.namespace)
                self.cluster.update_deployment(name, stored, now=now)
        elif plural == "nodes":
            causes = validation.node(changed, current)
            if causes:
                raise _invalid("Node", name, "", causes)
            if not dry_run:
                node = self.cluster.nodes[name]
                node.unschedulable = bool((changed.get("spec") or {}).get("unschedulable"))
                node.labels = dict(changed["metadata"].get("labels") or {})
                node.annotations = dict(changed["metadata"].get("annotations") or {})
                self.cluster.reconcile(now=now)
        elif plural == "pods":
            causes = validation.pod(changed, current)
            if causes:
                raise _invalid("Pod", name, "", causes)
            if not dry_run:
                pod = self.cluster.pods[name]
                pod.labels = dict(changed["metadata"].get("labels") or {})
                pod.annotations = dict(changed["metadata"].get("annotations") or {})
        else:
            raise ApiError(
                405, "MethodNotAllowed", f"{plural} cannot be changed through the twin's API"
            )
        if dry_run:
            return JSONResponse(changed)
        return JSONResponse(self._find(plural, name, current["metadata"].get("namespace")))

    def _delete(self, plural: str, current: JsonObject, request: Request) -> Response:
        if plural != "pods":
            raise ApiError(
                405, "MethodNotAllowed", f"deleting {plural} is not supported by the twin"
            )
        if not _dry_run(request):
            self.cluster.delete_pod(current["metadata"]["name"], now=self.twin.simulation.elapsed)
        return JSONResponse(current)

    async def _scale(self, request: Request) -> Response:
        try:
            self.twin.sync()
            name = request.path_params["name"]
            deployment = self._find("deployments", name, request.path_params["namespace"])
            item = self.cluster.deployments[name]
            current = objects.scale(self.cluster, item)
            current["metadata"]["resourceVersion"] = deployment["metadata"]["resourceVersion"]
            if request.method == "GET":
                return JSONResponse(current)
            changed = await self._changed(request, current)
            replicas = (changed.get("spec") or {}).get("replicas", 0)
            causes = validation.replicas(replicas, field="spec.replicas")
            if causes:
                raise _invalid("Scale", name, "autoscaling", causes)
            if _dry_run(request):
                return JSONResponse(changed)
            manifest = _stored_deployment(deployment)
            manifest["spec"]["replicas"] = replicas
            self.cluster.update_deployment(name, manifest, now=self.twin.simulation.elapsed)
            deployment = self._find("deployments", name, request.path_params["namespace"])
            result = objects.scale(self.cluster, self.cluster.deployments[name])
            result["metadata"]["resourceVersion"] = deployment["metadata"]["resourceVersion"]
            return JSONResponse(result)
        except ApiError as error:
            return error.response()

    async def _deployment_status(self, request: Request) -> Response:
        try:
            self.twin.sync()
            return JSONResponse(
                self._find(
                    "deployments", request.path_params["name"], request.path_params["namespace"]
                )
            )
        except ApiError as error:
            return error.response()


def _stored_deployment(rendered: JsonObject) -> JsonObject:
    """The parts of a Deployment a user owns: metadata they may set, and the spec."""
    metadata = rendered["metadata"]
    annotations = dict(metadata.get("annotations") or {})
    annotations.pop(REVISION_ANNOTATION, None)
    return {
        "metadata": {
            "name": metadata.get("name"),
            "namespace": metadata.get("namespace"),
            "labels": dict(metadata.get("labels") or {}),
            "annotations": annotations,
        },
        "spec": copy.deepcopy(rendered["spec"]),
    }


def _plural_of(kind: str) -> str:
    return {
        "Deployment": "deployments",
        "Pod": "pods",
        "Node": "nodes",
        "Scale": "deployments",
        "ReplicaSet": "replicasets",
        "Event": "events",
    }.get(kind, kind.lower() + "s")


def _wants_table(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "as=Table" in accept


def _dry_run(request: Request) -> bool:
    return request.query_params.get("dryRun") == "All"


def _watch_line(kind: str, obj: JsonObject) -> bytes:
    return (json.dumps({"type": kind, "object": obj}) + "\n").encode()
