"""The Kubernetes API access each step type needs, in one table beside the step types.

`selfheal rbac` turns the steps of a runbooks directory into a Role granting exactly the
union of their access, and `selfheal policy lint --role` fails a runbook whose step the
deployed Role does not allow; both read this table and nothing else. A step type added to
`actions` adds its row here, even an empty one for a step that never calls the API: a test
checks that every step type the controller runs has a row, so none can be forgotten.

Each row lists what the step's code calls through `kubernetes_client.KubernetesCluster`,
as RBAC names it: a deployment read is `get` on `deployments` in the `apps` group; a
replica change is `patch` on the `deployments/scale` subresource, which does not let the
controller edit anything else of a Deployment (its image, its command).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True, slots=True, order=True)
class ApiAccess:
    """One verb on one resource of one API group, as an RBAC rule grants it."""

    group: str  # "" is the core group
    resource: str  # a plural, or plural/subresource (`deployments/scale`)
    verb: str

    def __str__(self) -> str:
        where = f"{self.resource} (group {self.group})" if self.group else self.resource
        return f"{self.verb} {where}"


@dataclass(frozen=True, slots=True)
class StepAccess:
    """What a step type needs: always, and more when a step sets a given param."""

    always: frozenset[ApiAccess] = frozenset()
    # Access a step needs only when it sets this param: `notify` reads a deployment back
    # only for `state_of`, so a plain page needs no access at all.
    with_param: Mapping[str, frozenset[ApiAccess]] = field(default_factory=dict)

    def needed(self, params: Iterable[str]) -> frozenset[ApiAccess]:
        """The access a step of this type with these params needs."""
        needed = set(self.always)
        for name in params:
            needed |= self.with_param.get(name, frozenset())
        return frozenset(needed)


READ_DEPLOYMENT = ApiAccess("apps", "deployments", "get")
SCALE_DEPLOYMENT = ApiAccess("apps", "deployments/scale", "patch")
_NONE = StepAccess()

STEP_ACCESS: Mapping[str, StepAccess] = MappingProxyType(
    {
        # Reads the replicas to restore later, then patches the scale subresource.
        "kubernetes.scale": StepAccess(always=frozenset({READ_DEPLOYMENT, SCALE_DEPLOYMENT})),
        "kubernetes.restore_replicas": StepAccess(
            always=frozenset({READ_DEPLOYMENT, SCALE_DEPLOYMENT})
        ),
        "kubernetes.wait_available": StepAccess(always=frozenset({READ_DEPLOYMENT})),
        # Reads the deployment to refund only once it is back to its replicas.
        "budget.refund": StepAccess(always=frozenset({READ_DEPLOYMENT})),
        "notify": StepAccess(with_param={"state_of": frozenset({READ_DEPLOYMENT})}),
        "budget.check": _NONE,
        "incident.escalate": _NONE,
        "wait": _NONE,
        "verify": _NONE,  # queries telemetry, not the Kubernetes API
        "approval.wait": _NONE,
    }
)


def access_of(step_type: str, params: Iterable[str]) -> frozenset[ApiAccess]:
    """The access a step needs; a step type without a row here is a bug, not a user error."""
    try:
        row = STEP_ACCESS[step_type]
    except KeyError:
        raise LookupError(
            f"step type {step_type!r} declares no Kubernetes access in "
            "selfheal.actions.permissions.STEP_ACCESS"
        ) from None
    return row.needed(params)
