"""The object a write request would leave: a patch applied, or a replacement taken.

PATCH accepts the three formats kubectl and the clients send (JSON merge, strategic merge
with Kubernetes' merge keys, JSON patch); server-side apply is refused with 415 rather than
half-done. A body naming a resourceVersion other than the current one is a 409 Conflict, as
optimistic concurrency on a real cluster. Nothing here changes the model: the caller
validates the result and commits it.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from selfheal.twin import patching
from selfheal.twin.kube import kinds
from selfheal.twin.kube.errors import ApiError

JsonObject = dict[str, Any]
_MAX_BODY = 1 << 20
# Strategic merge: lists merged by a key rather than replaced, as Kubernetes' schemas say.
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


async def result_of(request: Request, current: JsonObject) -> JsonObject:
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
        plural = kinds.plural_of(current["kind"])
        kind = kinds.KINDS.get(plural)
        group = kind.group if kind else ""
        qualified = plural + (f".{group}" if group else "")
        raise ApiError(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on {qualified} "{current["metadata"]["name"]}": '
            "the object has been modified; please apply your changes to the latest version "
            "and try again",
            details={
                "name": current["metadata"]["name"],
                "group": group,
                "kind": plural,
            },
        )
    return changed
