"""Whether a deployed Role allows every step of the runbooks: `policy lint --role`.

A runbook whose step the controller's Role does not allow would fail at 3 a.m. with a 403,
halfway through a remediation; this check fails it before it is deployed, naming the step's
place (file:line:col), its id and type, and the verb and resource missing.

The Role is read from a YAML file, which may hold other objects too (`kubectl kustomize`
output, the file `selfheal rbac` writes): it must hold exactly one Role or ClusterRole.
Rules are matched as the API server's RBAC authorizer matches them: `*` stands for any API
group, resource (subresources included) or verb, and `*/scale` for that subresource of any
resource. A rule limited to `resourceNames` is not counted: a runbook's target is one of its
params, known only when it runs, so no name list can be shown to cover it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pydantic

from selfheal.actions.permissions import ApiAccess
from selfheal.domain.errors import ConfigError, SourceLocation
from selfheal.formats import sourced_yaml, text_files
from selfheal.runtime.rbac import StepNeed, step_needs
from selfheal.workflows.runbook import Runbook

_ROLE_KINDS = frozenset({"Role", "ClusterRole"})
_ANY = "*"


class _Rule(pydantic.BaseModel):
    """One PolicyRule as the file has it (fields the check does not need are ignored)."""

    model_config = pydantic.ConfigDict(extra="ignore", frozen=True)

    apiGroups: tuple[str, ...] = ()  # noqa: N815 - Kubernetes' field names
    resources: tuple[str, ...] = ()
    verbs: tuple[str, ...]
    resourceNames: tuple[str, ...] = ()  # noqa: N815


class _Metadata(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="ignore", frozen=True)

    name: str


class _Role(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="ignore", frozen=True)

    kind: str
    metadata: _Metadata
    # An aggregated ClusterRole's rules are filled in by the cluster; here they are null.
    rules: tuple[_Rule, ...] | None = None


@dataclass(frozen=True, slots=True)
class GrantedRule:
    """One rule of the Role and where it is written."""

    api_groups: frozenset[str]
    resources: frozenset[str]
    verbs: frozenset[str]
    resource_names: frozenset[str]
    location: SourceLocation

    def covers(self, access: ApiAccess) -> bool:
        """Whether the rule's groups, resources and verbs take in `access` (names aside)."""
        return (
            (_ANY in self.api_groups or access.group in self.api_groups)
            and (_ANY in self.verbs or access.verb in self.verbs)
            and _resource_matches(self.resources, access.resource)
        )


def _resource_matches(granted: frozenset[str], resource: str) -> bool:
    if _ANY in granted or resource in granted:
        return True
    _, slash, subresource = resource.partition("/")
    return bool(slash) and f"*/{subresource}" in granted


@dataclass(frozen=True, slots=True)
class DeployedRole:
    """The Role (or ClusterRole) a controller runs with, read from a manifest file."""

    kind: str
    name: str
    location: SourceLocation
    rules: tuple[GrantedRule, ...]

    def allows(self, access: ApiAccess) -> bool:
        return any(rule.covers(access) and not rule.resource_names for rule in self.rules)

    def names_only(self, access: ApiAccess) -> GrantedRule | None:
        """A rule that would allow `access` but for its `resourceNames`, if any."""
        return next((rule for rule in self.rules if rule.covers(access)), None)

    def __str__(self) -> str:
        return f"{self.kind} {self.name} ({self.location})"


@dataclass(frozen=True, slots=True)
class Refusal:
    """A step the Role does not allow, and what it lacks."""

    need: StepNeed
    missing: ApiAccess
    role: DeployedRole
    # Set when a rule covers the access for some names only.
    named_rule: GrantedRule | None = None

    def __str__(self) -> str:
        step = self.need.step
        text = (
            f"{self.need.where}: step {step.id!r} ({step.type}) needs {self.missing}, "
            f"which {self.role} does not allow"
        )
        if self.named_rule is not None:
            text += (
                f"; the rule at {self.named_rule.location} allows it only for resourceNames "
                f"{sorted(self.named_rule.resource_names)}, and the runbook's target is known "
                "only when it runs"
            )
        return text


def load_role(path: Path) -> DeployedRole:
    """The one Role or ClusterRole in a manifest file; ConfigError naming file:line if not."""
    text = text_files.read_text(path, kind=text_files.MANIFESTS)
    documents = sourced_yaml.load_yaml_documents(text, source=str(path))
    found = [
        document
        for document in documents
        if isinstance(document.data, Mapping) and document.data.get("kind") in _ROLE_KINDS
    ]
    if not found:
        raise ConfigError(
            "no Role or ClusterRole in this file (`selfheal rbac` writes one)",
            location=SourceLocation(str(path)),
        )
    if len(found) > 1:
        places = ", ".join(str(_line_of(document)) for document in found)
        raise ConfigError(
            f"{len(found)} Roles in this file ({places}); give the file of the one the "
            "controller is bound to",
            location=SourceLocation(str(path)),
        )
    document = found[0]
    role = sourced_yaml.load_model(_Role, document)
    rules = tuple(
        GrantedRule(
            api_groups=frozenset(rule.apiGroups),
            resources=frozenset(rule.resources),
            verbs=frozenset(rule.verbs),
            resource_names=frozenset(rule.resourceNames),
            location=document.locate(["rules", index]),
        )
        for index, rule in enumerate(role.rules or ())
    )
    return DeployedRole(
        kind=role.kind,
        name=role.metadata.name,
        location=_line_of(document),
        rules=rules,
    )


def _line_of(document: sourced_yaml.SourcedDocument) -> SourceLocation:
    """Where a document's `kind` is written: file:line:col, without the key path."""
    found = document.locate(["kind"])
    return SourceLocation(found.source, found.line, found.column)


def refusals(role: DeployedRole, runbooks: Mapping[str, Runbook]) -> list[Refusal]:
    """Each step's access the Role does not allow, in runbook and file order."""
    return [
        Refusal(need=need, missing=access, role=role, named_rule=role.names_only(access))
        for need in step_needs(runbooks)
        for access in sorted(need.access)
        if not role.allows(access)
    ]
