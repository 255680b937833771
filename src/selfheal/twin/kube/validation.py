"""Validation of objects changed through the API, with causes named by field path.

A change that fails validation is answered with 422 Invalid and leaves the cluster as it was,
as the real API server does; the causes use Kubernetes' field paths (`spec.replicas`,
`spec.template.spec.containers[0].resources.limits.cpu`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from selfheal.twin import quantity

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_MAX_REPLICAS = 1000


@dataclass(frozen=True, slots=True)
class Cause:
    """One reason a change is invalid, with the field path it concerns."""

    field: str
    message: str
    reason: str = "FieldValueInvalid"


def is_dns_label(name: str) -> bool:
    """RFC 1123 label, as Kubernetes requires of most names."""
    return len(name) <= 63 and bool(_DNS_LABEL.match(name))


def replicas(value: Any, *, field: str) -> list[Cause]:
    if isinstance(value, bool) or not isinstance(value, int):
        return [
            Cause(field, f"Invalid value: {value!r}: must be an integer", "FieldValueTypeInvalid")
        ]
    if value < 0:
        return [Cause(field, f"Invalid value: {value}: must be greater than or equal to 0")]
    if value > _MAX_REPLICAS:
        return [Cause(field, f"Invalid value: {value}: the twin runs at most {_MAX_REPLICAS}")]
    return []


def deployment(new: dict[str, Any], old: dict[str, Any]) -> list[Cause]:
    """Check a patched Deployment against its previous version."""
    causes: list[Cause] = []
    metadata = new.get("metadata")
    spec = new.get("spec")
    if not isinstance(metadata, dict):
        return [
            Cause("metadata", "Required value: metadata must be an object", "FieldValueRequired")
        ]
    if not isinstance(spec, dict):
        return [Cause("spec", "Required value: spec must be an object", "FieldValueRequired")]
    causes += _immutable(metadata, old, ("name", "namespace", "uid"))
    causes += _string_map(metadata.get("labels"), "metadata.labels")
    causes += _string_map(metadata.get("annotations"), "metadata.annotations")
    causes += replicas(spec.get("replicas", 1), field="spec.replicas")
    if spec.get("selector") != old["spec"].get("selector"):
        causes.append(Cause("spec.selector", "Invalid value: field is immutable"))
    template = spec.get("template")
    if not isinstance(template, dict):
        return [*causes, Cause("spec.template", "Required value", "FieldValueRequired")]
    causes += _template(template, selector=old["spec"]["selector"])
    return causes


def _immutable(metadata: dict[str, Any], old: dict[str, Any], keys: tuple[str, ...]) -> list[Cause]:
    return [
        Cause(f"metadata.{key}", "Invalid value: field is immutable")
        for key in keys
        # Leaving an identity field out of a full update is fine; changing it is not.
        if metadata.get(key) is not None and metadata.get(key) != old["metadata"].get(key)
    ]


def _string_map(value: Any, field: str) -> list[Cause]:
    if value is None:
        return []
    if not isinstance(value, dict) or not all(
        isinstance(key, str) and isinstance(item, str) for key, item in value.items()
    ):
        return [
            Cause(
                field, "Invalid value: must be a map of strings to strings", "FieldValueTypeInvalid"
            )
        ]
    return []


def _template(template: dict[str, Any], *, selector: dict[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    labels = (template.get("metadata") or {}).get("labels") or {}
    causes += _string_map(labels, "spec.template.metadata.labels")
    wanted = selector.get("matchLabels") or {}
    if isinstance(labels, dict) and any(labels.get(key) != value for key, value in wanted.items()):
        causes.append(
            Cause(
                "spec.template.metadata.labels",
                "Invalid value: `selector` does not match template `labels`",
            )
        )
    pod_spec = template.get("spec")
    if not isinstance(pod_spec, dict):
        return [*causes, Cause("spec.template.spec", "Required value", "FieldValueRequired")]
    containers = pod_spec.get("containers")
    if not isinstance(containers, list) or not containers:
        return [
            *causes,
            Cause("spec.template.spec.containers", "Required value", "FieldValueRequired"),
        ]
    for index, container in enumerate(containers):
        field = f"spec.template.spec.containers[{index}]"
        if not isinstance(container, dict):
            causes.append(Cause(field, "Invalid value: must be an object", "FieldValueTypeInvalid"))
            continue
        name = container.get("name")
        if not isinstance(name, str) or not is_dns_label(name):
            causes.append(
                Cause(
                    f"{field}.name",
                    f"Invalid value: {name!r}: a lowercase RFC 1123 label is required",
                )
            )
        if not isinstance(container.get("image"), str) or not container["image"]:
            causes.append(Cause(f"{field}.image", "Required value", "FieldValueRequired"))
        causes += _resources(container.get("resources"), f"{field}.resources")
    return causes


def _resources(resources: Any, field: str) -> list[Cause]:
    if resources is None:
        return []
    if not isinstance(resources, dict):
        return [Cause(field, "Invalid value: must be an object", "FieldValueTypeInvalid")]
    causes: list[Cause] = []
    parsed: dict[str, float] = {}
    for kind in ("requests", "limits"):
        section = resources.get(kind)
        if section is None:
            continue
        if not isinstance(section, dict):
            causes.append(
                Cause(
                    f"{field}.{kind}", "Invalid value: must be an object", "FieldValueTypeInvalid"
                )
            )
            continue
        if "cpu" in section:
            try:
                parsed[kind] = quantity.parse_cpu(section["cpu"])
            except ValueError as exc:
                causes.append(Cause(f"{field}.{kind}.cpu", f"Invalid value: {exc}"))
    if parsed.get("requests", 0.0) > parsed.get("limits", float("inf")):
        causes.append(
            Cause(f"{field}.requests.cpu", "Invalid value: must be less than or equal to cpu limit")
        )
    if parsed.get("limits") == 0:
        causes.append(Cause(f"{field}.limits.cpu", "Invalid value: must be greater than 0"))
    return causes


def node(new: dict[str, Any], old: dict[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    metadata = new.get("metadata") or {}
    causes += _immutable(metadata, old, ("name", "uid"))
    causes += _string_map(metadata.get("labels"), "metadata.labels")
    causes += _string_map(metadata.get("annotations"), "metadata.annotations")
    unschedulable = (new.get("spec") or {}).get("unschedulable", False)
    if not isinstance(unschedulable, bool):
        causes.append(
            Cause(
                "spec.unschedulable",
                f"Invalid value: {unschedulable!r}: must be a boolean",
                "FieldValueTypeInvalid",
            )
        )
    return causes


def pod(new: dict[str, Any], old: dict[str, Any]) -> list[Cause]:
    """Only labels and annotations of a running pod may change, as in Kubernetes."""
    causes: list[Cause] = []
    metadata = new.get("metadata") or {}
    causes += _string_map(metadata.get("labels"), "metadata.labels")
    causes += _string_map(metadata.get("annotations"), "metadata.annotations")
    if new.get("spec") != old.get("spec"):
        causes.append(
            Cause(
                "spec",
                "Forbidden: pod updates may not change fields other than labels and annotations",
                "FieldValueForbidden",
            )
        )
    causes += _immutable(metadata, old, ("name", "namespace", "uid"))
    return causes
