"""The Kubernetes API subset the twin serves over HTTP (an ASGI app).

Enough for the real kubectl and the official clients: discovery, get/list (with label and
field selectors, server-side Tables, and watch), patch in all three formats (changes.py),
update, the Deployment `scale` subresource, pod deletion and logs (logs.py), node
cordoning, events, and Services with their Endpoints and EndpointSlices (read-only). Which
resources exist is kinds.py's table. Errors are `Status` objects with the codes a real API
server uses (errors.py). `?dryRun=All` validates without changing anything.

Handlers are `async` so they all run on the event loop that also advances the model: the
simulation is never touched from two threads.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from selfheal.twin import selectors
from selfheal.twin.cluster import Cluster
from selfheal.twin.cluster_objects import REVISION_ANNOTATION
from selfheal.twin.kube import (
    changes,
    discovery,
    errors,
    kinds,
    logs,
    objects,
    tables,
    validation,
    watch,
)
from selfheal.twin.kube.errors import ApiError
from selfheal.twin.kube.kinds import Kind
from selfheal.twin.kube.versions import Versions
from selfheal.twin.simulation import Simulation

JsonObject = dict[str, Any]


class TwinHandle(Protocol):
    """What the API needs of the running twin: the model, brought up to date on demand."""

    simulation: Simulation

    def sync(self) -> None: ...


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
            Route("/apis/{group}", self._group_document(discovery.group), methods=get),
            Route("/apis/{group}/v1", self._group_document(discovery.group_resources), methods=get),
            Route("/api/v1/namespaces/{namespace}/pods/{name}/log", self._pod_log, methods=get),
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
            Route(
                "/apis/{group}/v1/namespaces/{namespace}/{plural}/{name}", self._item, methods=item
            ),
            Route(
                "/apis/{group}/v1/namespaces/{namespace}/{plural}", self._collection, methods=get
            ),
            Route("/apis/{group}/v1/{plural}", self._collection, methods=get),
        ]

    @staticmethod
    def _static(document: Callable[[], JsonObject]) -> Callable[[Request], Any]:
        async def handler(_request: Request) -> Response:
            return JSONResponse(document())

        return handler

    @staticmethod
    def _group_document(
        document: Callable[[str], JsonObject | None],
    ) -> Callable[[Request], Any]:
        async def handler(request: Request) -> Response:
            found = document(request.path_params["group"])
            return JSONResponse(found) if found else errors.no_such_path().response()

        return handler

    # ---- reading ----------------------------------------------------------------------
    def _kind(self, request: Request) -> tuple[str, Kind]:
        plural = request.path_params["plural"]
        kind = kinds.lookup(group=request.path_params.get("group", ""), plural=plural)
        if kind is None:
            raise errors.no_such_path()
        namespaced_path = "namespace" in request.path_params
        if namespaced_path and kind.cluster_scoped:
            raise errors.no_such_path()
        return plural, kind

    def _all(self, plural: str) -> list[JsonObject]:
        kind = kinds.KINDS[plural]
        items = kind.render_all(self.cluster)
        for obj in items:
            self.versions.stamp(obj)
        self.versions.forget_missing(kind.kind, items)
        return items

    def _find(self, plural: str, name: str, namespace: str | None) -> JsonObject:
        kind = kinds.KINDS[plural]
        if namespace is None and not kind.cluster_scoped:
            # A namespaced resource asked for without a namespace: no such path on a server.
            raise errors.no_such_path()
        if namespace is not None and namespace != self.cluster.namespace:
            raise errors.not_found(plural, name, kind.group)
        for obj in self._all(plural):
            if obj["metadata"]["name"] == name:
                return obj
        raise errors.not_found(plural, name, kind.group)

    def _selected(
        self, plural: str, namespace: str | None, matches: Callable[[JsonObject], bool]
    ) -> list[JsonObject]:
        return [
            obj
            for obj in self._all(plural)
            if (namespace is None or obj["metadata"].get("namespace") == namespace) and matches(obj)
        ]

    async def _collection(self, request: Request) -> Response:
        try:
            self.twin.sync()
            plural, kind = self._kind(request)
            matches = self._matcher(request)
            namespace = request.path_params.get("namespace")
            if request.query_params.get("watch") in {"true", "1"}:
                return watch.stream(
                    kind=kind,
                    query=request.query_params,
                    snapshot=lambda: {
                        obj["metadata"]["uid"]: obj
                        for obj in self._selected(plural, namespace, matches)
                    },
                    refresh=self.twin.sync,
                    resource_version=lambda: self.versions.current,
                )
            items = self._selected(plural, namespace, matches)
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

    def _respond_list(self, request: Request, kind: Kind, items: list[JsonObject]) -> Response:
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
        return JSONResponse(
            {
                "kind": f"{kind.kind}List",
                "apiVersion": kind.api_version,
                "metadata": {"resourceVersion": self.versions.current},
                "items": items,
            }
        )

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
            changed = await changes.result_of(request, current)
            return self._commit(plural, current, changed, dry_run=_dry_run(request))
        except ApiError as error:
            return error.response()

    # ---- writing ----------------------------------------------------------------------
    def _commit(
        self, plural: str, current: JsonObject, changed: JsonObject, *, dry_run: bool
    ) -> Response:
        name = current["metadata"]["name"]
        now = self.twin.simulation.elapsed
        if plural == "deployments":
            causes = validation.deployment(changed, current)
            if causes:
                raise errors.invalid("Deployment", name, "apps", causes)
            if not dry_run:
                stored = _stored_deployment(changed)
                stored["metadata"].update(name=name, namespace=self.cluster.namespace)
                self.cluster.update_deployment(name, stored, now=now)
        elif plural == "nodes":
            causes = validation.node(changed, current)
            if causes:
                raise errors.invalid("Node", name, "", causes)
            if not dry_run:
                node = self.cluster.nodes[name]
                node.unschedulable = bool((changed.get("spec") or {}).get("unschedulable"))
                node.labels = dict(changed["metadata"].get("labels") or {})
                node.annotations = dict(changed["metadata"].get("annotations") or {})
                self.cluster.reconcile(now=now)
        elif plural == "pods":
            causes = validation.pod(changed, current)
            if causes:
                raise errors.invalid("Pod", name, "", causes)
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
            changed = await changes.result_of(request, current)
            replicas = (changed.get("spec") or {}).get("replicas", 0)
            causes = validation.replicas(replicas, field="spec.replicas")
            if causes:
                raise errors.invalid("Scale", name, "autoscaling", causes)
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

    async def _pod_log(self, request: Request) -> Response:
        try:
            self.twin.sync()
            name = request.path_params["name"]
            rendered = self._find("pods", name, request.path_params["namespace"])
            return logs.respond(
                cluster=self.cluster,
                pod=self.cluster.pods[name],
                rendered=rendered,
                query=request.query_params,
                refresh=self.twin.sync,
                now=self.twin.simulation.elapsed,
            )
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


def _wants_table(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "as=Table" in accept


def _dry_run(request: Request) -> bool:
    return request.query_params.get("dryRun") == "All"
