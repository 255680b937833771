"""Fault types a scenario can schedule, and the small interface they act through.

Each fault is a pydantic model with a literal `type` (the scenario's discriminator) and an
`apply(target)` method. To add a fault: write its class here, add it to `FaultSpec` in
scenario.py, and describe it in docs/twin.md. Faults act through `FaultTarget`, not on the
simulation's internals, so they stay small and the simulation keeps its invariants.
"""

from __future__ import annotations

from typing import Annotated, Literal, Protocol

import pydantic
from typing_extensions import override

from selfheal.formats import durations
from selfheal.twin import quantity

Duration = Annotated[float, pydantic.BeforeValidator(durations.parse_duration)]
CpuQuantity = Annotated[float, pydantic.BeforeValidator(quantity.parse_cpu)]


class FaultTarget(Protocol):
    """What a fault may do to the running simulation."""

    def set_load_factor(self, factor: float, *, ramp_over: float) -> None: ...

    def set_cpu_resources(
        self, service: str, *, limit: float | None, request: float | None
    ) -> None: ...

    def crash_pods(self, service: str, *, count: int) -> None: ...

    def lose_node(self, node: str, *, recover_after: float | None) -> None: ...

    def set_replicas(self, service: str, *, replicas: int) -> None: ...

    def crash_loop(self, service: str, *, every: float, until: float) -> None: ...

    @property
    def elapsed(self) -> float: ...

    def schedule(self, delay: float, fault: Fault) -> None: ...


class Fault(pydantic.BaseModel):
    """Common fields: when the fault happens, in scenario seconds from the start."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    at: Duration

    def apply(self, target: FaultTarget) -> None:
        raise NotImplementedError

    def check_references(self, *, services: set[str], nodes: set[str]) -> None:
        """Raise ValueError if the fault names a service or node the scenario lacks."""

    def describe(self) -> str:
        """One line for people, e.g. `load ramps to 6x over 20s`."""
        fields = self.model_dump(exclude={"at", "type"}, exclude_none=True)
        details = ", ".join(f"{key}={value}" for key, value in fields.items())
        return f"{self.type_name} ({details})" if details else self.type_name

    @property
    def type_name(self) -> str:
        return str(getattr(self, "type", type(self).__name__))


def _known(kind: str, name: str, known: set[str]) -> None:
    if name not in known:
        raise ValueError(f"fault names unknown {kind} {name!r}; known: {sorted(known)}")


class LoadStep(Fault):
    """Traffic jumps to `factor` times the base load; back to 1x after `duration` if given."""

    type: Literal["load_step"]
    factor: float = pydantic.Field(ge=0)
    duration: Duration | None = None

    def apply(self, target: FaultTarget) -> None:
        target.set_load_factor(self.factor, ramp_over=0.0)
        if self.duration is not None:
            target.schedule(self.duration, LoadStep(type="load_step", at=0.0, factor=1.0))


class LoadRamp(Fault):
    """Traffic moves linearly to `to` times the base load over `over` seconds."""

    type: Literal["load_ramp"]
    to: float = pydantic.Field(ge=0)
    over: Duration

    def apply(self, target: FaultTarget) -> None:
        target.set_load_factor(self.to, ramp_over=self.over)


class CpuLimitChange(Fault):
    """A deploy changes a service's CPU limit (and request): a new ReplicaSet rolls out."""

    type: Literal["cpu_limit"]
    service: str
    limit: CpuQuantity
    request: CpuQuantity | None = None

    def apply(self, target: FaultTarget) -> None:
        target.set_cpu_resources(self.service, limit=self.limit, request=self.request)

    @override
    def check_references(self, *, services: set[str], nodes: set[str]) -> None:
        _known("service", self.service, services)


class PodCrash(Fault):
    """`count` pods of a service crash; their containers restart and warm up again."""

    type: Literal["pod_crash"]
    service: str
    count: int = pydantic.Field(default=1, ge=1)

    def apply(self, target: FaultTarget) -> None:
        target.crash_pods(self.service, count=self.count)

    @override
    def check_references(self, *, services: set[str], nodes: set[str]) -> None:
        _known("service", self.service, services)


class NodeLoss(Fault):
    """A node stops responding; its pods stop serving and are evicted after a timeout."""

    type: Literal["node_loss"]
    node: str
    recover_after: Duration | None = None

    def apply(self, target: FaultTarget) -> None:
        target.lose_node(self.node, recover_after=self.recover_after)

    @override
    def check_references(self, *, services: set[str], nodes: set[str]) -> None:
        _known("node", self.node, nodes)


class ReplicasSet(Fault):
    """Something else sets a service's replicas: a GitOps sync undoing a manual scale."""

    type: Literal["replicas"]
    service: str
    replicas: int = pydantic.Field(ge=0)

    def apply(self, target: FaultTarget) -> None:
        target.set_replicas(self.service, replicas=self.replicas)

    @override
    def check_references(self, *, services: set[str], nodes: set[str]) -> None:
        _known("service", self.service, services)


class CrashLoop(Fault):
    """For `duration`, every pod of a service crashes about `every` seconds after it is ready.

    A bad config push: containers start, warm up, serve a little and exit, over and over.
    Each pod's period is spread by up to a quarter either way, so the pods do not crash in
    step.
    """

    type: Literal["crash_loop"]
    service: str
    every: Annotated[Duration, pydantic.Field(gt=0)]
    duration: Annotated[Duration, pydantic.Field(gt=0)]

    def apply(self, target: FaultTarget) -> None:
        target.crash_loop(self.service, every=self.every, until=target.elapsed + self.duration)

    @override
    def check_references(self, *, services: set[str], nodes: set[str]) -> None:
        _known("service", self.service, services)
