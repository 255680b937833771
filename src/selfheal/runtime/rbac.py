"""The least-privilege Role for a set of runbooks: what their steps call, and nothing more.

Each step's access comes from the step types' table (`selfheal.actions.permissions`), so a
Role is derived from the runbooks the controller will run, never written by hand: rules are
the union of every step's access, one rule per API group and set of verbs, resources and
verbs sorted, so the same runbooks always give the same bytes (a committed Role can be
checked to be up to date).

The manifests are a ServiceAccount, the Role and a RoleBinding of the one to the other, all
in one namespace: the controller then acts on workloads in the namespace it runs in. With
`cluster_wide`, a ClusterRole and a ClusterRoleBinding grant the same verbs in every
namespace (the ServiceAccount still lives in one).

`selfheal policy lint --role` checks runbooks against a deployed Role (`role_check.py`).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from selfheal.actions import permissions
from selfheal.actions.permissions import ApiAccess
from selfheal.domain.errors import ConfigError, SourceLocation
from selfheal.workflows.runbook import Runbook, Step

DEFAULT_NAME = "selfheal"
DEFAULT_NAMESPACE = "selfheal"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_RBAC_API = "rbac.authorization.k8s.io/v1"


@dataclass(frozen=True, slots=True)
class StepNeed:
    """A runbook step and the Kubernetes access it needs."""

    runbook: str
    step: Step
    access: frozenset[ApiAccess]

    @property
    def where(self) -> str:
        """The step's place (file:line:col) as the runbook loader names it."""
        return str(self.step.location or SourceLocation(f"runbook {self.runbook}"))


def step_needs(runbooks: Mapping[str, Runbook]) -> list[StepNeed]:
    """Every step of every runbook (compensation included) with its access, in file order."""
    needs = []
    for name in sorted(runbooks):
        runbook = runbooks[name]
        for step in (*runbook.steps, *runbook.compensation):
            access = permissions.access_of(step.type, step.params)
            needs.append(StepNeed(runbook=name, step=step, access=access))
    return needs


def policy_rules(accesses: Iterable[ApiAccess]) -> list[dict[str, list[str]]]:
    """RBAC rules granting exactly `accesses`, merged and sorted deterministically.

    Resources of one API group that need the same verbs share a rule; a resource is never
    given a verb only another resource needs (no `patch` on `deployments` because
    `deployments/scale` needs it).
    """
    verbs: dict[tuple[str, str], set[str]] = defaultdict(set)
    for access in accesses:
        verbs[access.group, access.resource].add(access.verb)
    grouped: dict[tuple[str, tuple[str, ...]], list[str]] = defaultdict(list)
    for (group, resource), wanted in verbs.items():
        grouped[group, tuple(sorted(wanted))].append(resource)
    rules = [
        {"apiGroups": [group], "resources": sorted(resources), "verbs": list(verb_set)}
        for (group, verb_set), resources in grouped.items()
    ]
    return sorted(rules, key=lambda rule: (rule["apiGroups"], rule["resources"], rule["verbs"]))


def manifests(
    runbooks: Mapping[str, Runbook],
    *,
    name: str = DEFAULT_NAME,
    namespace: str = DEFAULT_NAMESPACE,
    cluster_wide: bool = False,
) -> list[dict[str, Any]]:
    """The ServiceAccount, the Role (or ClusterRole) and its binding for these runbooks."""
    _check_name(name, option="--name", pattern=_DNS_SUBDOMAIN, limit=253)
    _check_name(namespace, option="--namespace", pattern=_DNS_LABEL, limit=63)
    needs = step_needs(runbooks)
    rules = policy_rules(access for need in needs for access in need.access)
    role_kind = "ClusterRole" if cluster_wide else "Role"

    def metadata(*, namespaced: bool) -> dict[str, Any]:
        # A fresh mapping per object: YAML would write a shared one as an anchor and alias.
        labels = {"app.kubernetes.io/name": "selfheal", "app.kubernetes.io/component": "controller"}
        found: dict[str, Any] = {"name": name}
        if namespaced:
            found["namespace"] = namespace
        return {**found, "labels": labels}

    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata(namespaced=True)},
        {
            "apiVersion": _RBAC_API,
            "kind": role_kind,
            "metadata": metadata(namespaced=not cluster_wide),
            "rules": rules,
        },
        {
            "apiVersion": _RBAC_API,
            "kind": f"{role_kind}Binding",
            "metadata": metadata(namespaced=not cluster_wide),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        },
    ]


def render(
    runbooks: Mapping[str, Runbook],
    *,
    name: str = DEFAULT_NAME,
    namespace: str = DEFAULT_NAMESPACE,
    cluster_wide: bool = False,
) -> str:
    """The manifests as one YAML stream, headed by which step needs which access."""
    documents = manifests(runbooks, name=name, namespace=namespace, cluster_wide=cluster_wide)
    header = [
        "# Generated by `selfheal rbac` from the runbooks; regenerate it, do not edit it.",
        "# What each step needs (runbook/step (type): access):",
    ]
    for need in step_needs(runbooks):
        granted = ", ".join(str(access) for access in sorted(need.access)) or "nothing"
        header.append(f"#   {need.runbook}/{need.step.id} ({need.step.type}): {granted}")
    body = yaml.safe_dump_all(documents, sort_keys=False, default_flow_style=False)
    return "\n".join(header) + "\n---\n" + body


def _check_name(value: str, *, option: str, pattern: re.Pattern[str], limit: int) -> None:
    if len(value) > limit or not pattern.match(value):
        raise ConfigError(
            f"{value!r} is not a valid Kubernetes name (lowercase letters, digits and '-', "
            f"at most {limit} characters)",
            location=SourceLocation(option),
        )
