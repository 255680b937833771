"""Scenario files: the platform to simulate, its load, and a timeline of faults.

A scenario is YAML (see `scenarios/*.yaml` and docs/twin.md). Every field is validated; an
unknown fault type or a misspelt field is refused with the file, line and field path. Fault
types live in `faults.py`; adding one is a new class there plus its entry in `FaultSpec`.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic

from selfheal.domain.errors import ConfigError, SourceLocation
from selfheal.formats import durations, sourced_yaml, text_files
from selfheal.twin import faults, quantity

Duration = Annotated[float, pydantic.BeforeValidator(durations.parse_duration)]


def _cpu(value: Any) -> float:
    return quantity.parse_cpu(value)


CpuQuantity = Annotated[float, pydantic.BeforeValidator(_cpu)]


class _Strict(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)


class CallSpec(_Strict):
    """A downstream call: each request to the caller makes `ratio` calls to `service`."""

    service: str
    ratio: float = pydantic.Field(ge=0)


class ServiceSpec(_Strict):
    """One Deployment and the performance of its pods."""

    replicas: int = pydantic.Field(ge=0)
    cpu_request: CpuQuantity
    cpu_limit: CpuQuantity
    # Core-seconds of CPU one request costs; sets how much traffic a core can serve.
    cpu_per_request: float = pydantic.Field(gt=0)
    # Own processing time of one request on an idle pod, before any queueing.
    base_latency: Duration
    # CPU a pod burns doing nothing (runtime, health checks).
    idle_cpu: CpuQuantity = 0.01
    startup_delay: Duration = 10.0
    # Share of this service's traffic that the entry point sends it (only for entry points).
    entry: bool = False
    calls: tuple[CallSpec, ...] = ()
    # Latency of a third-party dependency called once per request (the payment provider).
    external_latency: Duration = 0.0
    image: str = "registry.example.com/shop/app:1.0.0"


class NodeSpec(_Strict):
    """A node of the simulated cluster."""

    name: str
    cpu: CpuQuantity
    zone: str = "zone-a"


class LoadSpec(_Strict):
    """Requests per second entering at the entry service, with a daily cycle and noise."""

    base_rps: float = pydantic.Field(gt=0)
    # Daily cycle: load = base * (1 + amplitude * sin(...)), peaking at `peak_at` seconds.
    diurnal_amplitude: float = pydantic.Field(default=0.0, ge=0, lt=1)
    diurnal_period: Duration = 86400.0
    peak_at: Duration = 14 * 3600.0
    # Relative standard deviation of per-tick traffic noise.
    noise: float = pydantic.Field(default=0.02, ge=0, lt=1)


class SloSpec(_Strict):
    """The latency SLO the baseline report measures."""

    service: str = "order-service"
    p95_latency: Duration = 0.2


class Responder(_Strict):
    """A simulated on-call person for demos: answers the approval an alert's incident asks.

    `selfheal demo` plays them through the controller's approval desk (the same call the
    REST API makes), `after` scenario seconds after the request; requests nobody answers
    run into their timeout.
    """

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    alert: str
    verdict: Literal["approve", "deny"]
    name: str = pydantic.Field(alias="as", min_length=1)
    reason: str = pydantic.Field(min_length=1)
    after: Duration = 30.0


def _default_services() -> dict[str, ServiceSpec]:
    # The reference platform; numbers are chosen so steady load runs the order-service at a
    # third of its CPU limit, while a 6x flash sale needs more than its 2 pods can give.
    return {
        "frontend": ServiceSpec(
            replicas=3,
            cpu_request=0.25,
            cpu_limit=1.0,
            cpu_per_request=0.001,
            base_latency=0.02,
            entry=True,
            calls=(
                CallSpec(service="catalog", ratio=0.8),
                CallSpec(service="order-service", ratio=0.25),
            ),
        ),
        "catalog": ServiceSpec(
            replicas=2,
            cpu_request=0.25,
            cpu_limit=1.0,
            cpu_per_request=0.001,
            base_latency=0.015,
        ),
        "order-service": ServiceSpec(
            replicas=2,
            cpu_request=0.25,
            cpu_limit=0.5,
            cpu_per_request=0.004,
            base_latency=0.025,
            startup_delay=12.0,
            calls=(CallSpec(service="payment-gateway", ratio=1.0),),
        ),
        "payment-gateway": ServiceSpec(
            replicas=2,
            cpu_request=0.1,
            cpu_limit=0.5,
            cpu_per_request=0.001,
            base_latency=0.01,
            external_latency=0.05,
        ),
    }


def _default_nodes() -> tuple[NodeSpec, ...]:
    return tuple(
        NodeSpec(name=f"node-{index}", cpu=4.0, zone=f"zone-{'abc'[index - 1]}")
        for index in (1, 2, 3)
    )


FaultSpec = Annotated[
    faults.LoadStep
    | faults.LoadRamp
    | faults.CpuLimitChange
    | faults.PodCrash
    | faults.NodeLoss
    | faults.ReplicasSet
    | faults.CrashLoop,
    pydantic.Field(discriminator="type"),
]


class Scenario(_Strict):
    """A whole scenario file."""

    name: str
    description: str = ""
    duration: Annotated[Duration, pydantic.Field(gt=0)]
    seed: int = 1
    # The model's time step: 1 s resolves the 15 s detection windows later stages need.
    tick: Annotated[Duration, pydantic.Field(gt=0, le=60)] = 1.0
    namespace: str = "production"
    nodes: tuple[NodeSpec, ...] = pydantic.Field(default_factory=_default_nodes)
    services: dict[str, ServiceSpec] = pydantic.Field(default_factory=_default_services)
    # Per-service overrides merged over the default platform, so a scenario can change one
    # field (say, order-service's CPU limit) without restating the rest.
    service_overrides: dict[str, dict[str, Any]] = pydantic.Field(default_factory=dict)
    load: LoadSpec
    slo: SloSpec = SloSpec()
    faults: tuple[FaultSpec, ...] = ()
    # People who answer approval requests in a demo (see Responder).
    responders: tuple[Responder, ...] = ()
    # Pods on a lost node are evicted and recreated elsewhere after this long.
    pod_eviction_timeout: Duration = 40.0

    @pydantic.model_validator(mode="after")
    def _check_references(self) -> Scenario:
        services = dict(self.services)
        for name, override in self.service_overrides.items():
            if name not in services:
                raise ValueError(f"service_overrides names unknown service {name!r}")
            merged = services[name].model_dump() | override
            services[name] = ServiceSpec.model_validate(merged)
        object.__setattr__(self, "services", services)
        object.__setattr__(self, "service_overrides", {})
        entries = [name for name, spec in services.items() if spec.entry]
        if len(entries) != 1:
            raise ValueError(f"exactly one service must be the entry point, found {entries}")
        for name, spec in services.items():
            for call in spec.calls:
                if call.service not in services:
                    raise ValueError(f"service {name!r} calls unknown service {call.service!r}")
        node_names = {node.name for node in self.nodes}
        if len(node_names) != len(self.nodes):
            raise ValueError("node names must be unique")
        if self.slo.service not in services:
            raise ValueError(f"the SLO names unknown service {self.slo.service!r}")
        for fault in self.faults:
            fault.check_references(services=set(services), nodes=node_names)
        return self

    @property
    def entry_service(self) -> str:
        return next(name for name, spec in self.services.items() if spec.entry)


def builtin_names() -> list[str]:
    """Names of the scenarios shipped in the package."""
    folder = resources.files("selfheal.twin").joinpath("scenarios")
    return sorted(
        entry.name.removesuffix(".yaml")
        for entry in folder.iterdir()
        if entry.name.endswith(".yaml")
    )


def load(name_or_path: str) -> Scenario:
    """Load a shipped scenario by name, or a scenario file by path."""
    candidate = Path(name_or_path)
    if candidate.suffix in {".yaml", ".yml"} or candidate.exists():
        return sourced_yaml.load_model_file(Scenario, candidate, kind=text_files.SCENARIO)
    if name_or_path not in builtin_names():
        known = ", ".join(builtin_names())
        raise ConfigError(
            f"no scenario named {name_or_path!r}; shipped scenarios: {known} "
            "(or pass the path of a scenario YAML file)",
            location=SourceLocation("--scenario"),
        )
    text = (
        resources.files("selfheal.twin")
        .joinpath("scenarios")
        .joinpath(f"{name_or_path}.yaml")
        .read_text(encoding="utf-8")
    )
    document = sourced_yaml.load_yaml(text, source=f"<builtin>/{name_or_path}.yaml")
    return sourced_yaml.load_model(Scenario, document)
