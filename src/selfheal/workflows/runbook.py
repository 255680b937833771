"""Runbooks: YAML DAGs of typed steps, validated whole before anything runs.

A runbook names its parameters, its steps (each with a `type`, `params`, `needs`, `retry`,
`timeout`, `on_failure`) and its compensation steps (run when a step fails, to undo or
escalate). Loading checks everything a run could trip on later: unknown step types and
their parameters, `needs` that name missing steps or form a cycle, references to params or
steps that will not exist, compensation steps that are not defined. Errors name
file:line:col and the field path. See docs/runbooks.md.
"""

from __future__ import annotations

import graphlib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic

from selfheal.domain.actions import StepType
from selfheal.domain.errors import ConfigError, SourceLocation
from selfheal.formats import durations, sourced_yaml, text_files
from selfheal.workflows import templating

Duration = Annotated[float, pydantic.BeforeValidator(durations.parse_duration)]
_ID = r"^[a-z][a-z0-9_-]*$"


class _Strict(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)


class Retry(_Strict):
    """Attempts (1 = no retry) and the pause between them, doubled after each failure."""

    attempts: int = pydantic.Field(default=1, ge=1, le=20)
    backoff: Duration = 1.0


class ParamSpec(_Strict):
    """A runbook parameter: its type, whether it is required, its default."""

    type: Literal["string", "integer", "number", "boolean", "object", "list"] = "string"
    required: bool = False
    default: Any = None
    description: str = ""


class Step(_Strict):
    """One step of a runbook: an action of a step type with its params and policies."""

    id: str = pydantic.Field(pattern=_ID)
    type: str
    description: str = ""
    params: dict[str, Any] = pydantic.Field(default_factory=dict)
    needs: tuple[str, ...] = ()
    retry: Retry = Retry()
    timeout: Duration = 60.0
    # Compensation steps to run, in order, if this step fails; defaults to the runbook's.
    on_failure: tuple[str, ...] | None = None
    # Where the step is written (file:line:col), set by `load_runbook`: checks made after
    # loading (a Role that does not allow the step) name the step's place as the loader does.
    _location: SourceLocation | None = pydantic.PrivateAttr(default=None)

    @property
    def location(self) -> SourceLocation | None:
        return self._location


class Runbook(_Strict):
    """A whole runbook file."""

    name: str = pydantic.Field(pattern=_ID)
    description: str = ""
    # How much harm a wrong run can do. A plan choosing this runbook is at least this
    # risky whatever the policy says, and a `high` one waits for a person's approval.
    risk: Literal["low", "medium", "high"] = "medium"
    params: dict[str, ParamSpec] = pydantic.Field(default_factory=dict)
    steps: tuple[Step, ...] = pydantic.Field(min_length=1)
    compensation: tuple[Step, ...] = ()
    on_failure: tuple[str, ...] = ()

    def order(self) -> list[Step]:
        """Steps in an order that respects `needs` (ties keep file order)."""
        by_id = {step.id: step for step in self.steps}
        sorter = graphlib.TopologicalSorter({step.id: step.needs for step in self.steps})
        sorter.prepare()
        ordered: list[Step] = []
        position = {step.id: index for index, step in enumerate(self.steps)}
        while sorter.is_active():
            ready = sorted(sorter.get_ready(), key=position.__getitem__)
            for step_id in ready:
                ordered.append(by_id[step_id])
                sorter.done(step_id)
        return ordered

    def compensation_for(self, step: Step) -> list[Step]:
        names = step.on_failure if step.on_failure is not None else self.on_failure
        by_id = {item.id: item for item in self.compensation}
        return [by_id[name] for name in names]

    def resolve_params(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Fill defaults and check the given params against the declared ones."""
        unknown = sorted(set(given) - set(self.params))
        if unknown:
            raise ConfigError(
                f"runbook {self.name!r} takes no params {unknown}; it takes {sorted(self.params)}"
            )
        resolved: dict[str, Any] = {}
        for name, spec in self.params.items():
            if name in given:
                resolved[name] = given[name]
            elif spec.required:
                raise ConfigError(f"runbook {self.name!r} needs param {name!r}")
            else:
                resolved[name] = spec.default
        return resolved


def load_runbook(path: Path, *, step_types: Mapping[str, StepType]) -> Runbook:
    """Read and validate one runbook file; raise ConfigError naming file:line:col."""
    text = text_files.read_text(path, kind=text_files.RUNBOOK)
    document = sourced_yaml.load_yaml(text, source=str(path))
    runbook = sourced_yaml.load_model(Runbook, document)
    _check(runbook, document, step_types)
    for section, steps in (("steps", runbook.steps), ("compensation", runbook.compensation)):
        for index, step in enumerate(steps):
            step._location = document.locate([section, index])  # noqa: SLF001 - set once, here
    return runbook


def load_runbooks(directory: Path, *, step_types: Mapping[str, StepType]) -> dict[str, Runbook]:
    """Every `*.yaml` runbook in a directory, by name; duplicate names are an error."""
    if not directory.is_dir():
        raise ConfigError(f"runbook directory {directory} does not exist")
    runbooks: dict[str, Runbook] = {}
    for path in sorted(directory.glob("*.y*ml")):
        runbook = load_runbook(path, step_types=step_types)
        if runbook.name in runbooks:
            raise ConfigError(f"{path}: a runbook named {runbook.name!r} is already defined")
        runbooks[runbook.name] = runbook
    return runbooks


def _fail(document: sourced_yaml.SourcedDocument, path: list[str | int], message: str) -> None:
    raise ConfigError(message, location=document.locate(path))


def _check(
    runbook: Runbook, document: sourced_yaml.SourcedDocument, step_types: Mapping[str, StepType]
) -> None:
    ids = [step.id for step in runbook.steps]
    compensation_ids = [step.id for step in runbook.compensation]
    seen: set[str] = set()
    for index, step_id in enumerate(ids + compensation_ids):
        if step_id in seen:
            section = "steps" if index < len(ids) else "compensation"
            position = index if index < len(ids) else index - len(ids)
            _fail(document, [section, position, "id"], f"step id {step_id!r} is used twice")
        seen.add(step_id)
    for section, steps in (("steps", runbook.steps), ("compensation", runbook.compensation)):
        for index, step in enumerate(steps):
            _check_step(
                runbook,
                document,
                step_types,
                section=section,
                index=index,
                step=step,
                ids=set(ids),
                compensation_ids=set(compensation_ids),
            )
    for name in runbook.on_failure:
        if name not in compensation_ids:
            _fail(
                document,
                ["on_failure"],
                f"on_failure names {name!r}, which is not a "
                f"compensation step ({sorted(compensation_ids)})",
            )
    try:
        graphlib.TopologicalSorter({step.id: step.needs for step in runbook.steps}).prepare()
    except graphlib.CycleError as exc:
        cycle = " -> ".join(exc.args[1])
        first = exc.args[1][0]
        _fail(document, ["steps", ids.index(first), "needs"], f"`needs` form a cycle: {cycle}")


def _check_step(
    runbook: Runbook,
    document: sourced_yaml.SourcedDocument,
    step_types: Mapping[str, StepType],
    *,
    section: str,
    index: int,
    step: Step,
    ids: set[str],
    compensation_ids: set[str],
) -> None:
    where: list[str | int] = [section, index]
    kind = step_types.get(step.type)
    if kind is None:
        _fail(
            document,
            [*where, "type"],
            f"unknown step type {step.type!r}; known types: {', '.join(sorted(step_types))}",
        )
        return
    unknown = sorted(set(step.params) - kind.params)
    if unknown:
        _fail(
            document,
            [*where, "params", unknown[0]],
            f"step type {step.type!r} takes no param {unknown[0]!r}; it takes "
            f"{', '.join(sorted(kind.params)) or 'none'}",
        )
    missing = sorted(kind.required - set(step.params))
    if missing:
        _fail(document, [*where, "params"], f"step type {step.type!r} needs param {missing[0]!r}")
    for need in step.needs:
        if need not in ids:
            _fail(document, [*where, "needs"], f"`needs` names unknown step {need!r}")
    for name in step.on_failure or ():
        if name not in compensation_ids:
            _fail(
                document,
                [*where, "on_failure"],
                f"on_failure names {name!r}, which is not a compensation step",
            )
    for reference in templating.references(step.params):
        root, _, rest = reference.partition(".")
        if root not in templating.ROOTS:
            _fail(
                document,
                [*where, "params"],
                f"'{{{{ {reference} }}}}' must start with one "
                f"of {', '.join(sorted(templating.ROOTS))}",
            )
        if root == "params" and rest.split(".")[0] not in runbook.params:
            _fail(
                document,
                [*where, "params"],
                f"'{{{{ {reference} }}}}' names a param the runbook does not declare",
            )
        # Compensation steps may also read the compensation steps before them (a page
        # saying how the rollback went).
        referable = ids | compensation_ids if section == "compensation" else ids
        if root == "steps" and rest.split(".")[0] not in referable:
            _fail(
                document,
                [*where, "params"],
                f"'{{{{ {reference} }}}}' names no step of this runbook",
            )
