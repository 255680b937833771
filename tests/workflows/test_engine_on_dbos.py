"""The runbook interpreter on real DBOS (SQLite): order, compensation, retries, idempotency."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from selfheal.domain.actions import ActionSpec, Invocation, StepFailed, StepType
from selfheal.domain.errors import TemporaryError
from selfheal.domain.time import ManualClock
from selfheal.workflows import WorkflowEngine, load_runbook


class RecordingObserver:
    """Keeps what the engine reports, and a memo, in memory (a test double of the store)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []
        self.memo: dict[tuple[str, str], Any] = {}
        self.lock = threading.Lock()

    def recall(self, key: str, name: str) -> Any:
        return self.memo.get((key, name))

    def recall_all(self, key: str) -> dict[str, Any]:
        return {name: value for (owner, name), value in self.memo.items() if owner == key}

    def remember(self, key: str, name: str, value: Any, *, kind: str, at: float) -> None:
        self.memo.setdefault((key, name), value)

    def workflow_started(self, *, workflow_id: str, **_: Any) -> None:
        with self.lock:
            self.events.append(("started", workflow_id, ""))

    def step_finished(self, *, workflow_id: str, step_id: str, status: str, **_: Any) -> None:
        with self.lock:
            self.events.append(("step", step_id, status))

    def workflow_finished(self, *, workflow_id: str, outcome: str, **_: Any) -> None:
        with self.lock:
            self.events.append(("finished", workflow_id, outcome))


class World:
    """What the test actions did, in order."""

    def __init__(self) -> None:
        self.effects: list[str] = []
        self.flaky_failures = 2


def actions(world: World) -> dict[str, ActionSpec]:
    def record(params: Mapping[str, Any], invocation: Invocation) -> Mapping[str, Any]:
        world.effects.append(f"{invocation.step_id}:{params.get('value')}")
        return {"value": params.get("value")}

    def fail(params: Mapping[str, Any], invocation: Invocation) -> Mapping[str, Any]:
        world.effects.append(f"{invocation.step_id}:failed")
        raise StepFailed("it did not work", output={"why": "test"})

    def flaky(params: Mapping[str, Any], invocation: Invocation) -> Mapping[str, Any]:
        world.effects.append(f"{invocation.step_id}:attempt{invocation.attempt}")
        if world.flaky_failures:
            world.flaky_failures -= 1
            raise TemporaryError("not yet", delay=0)
        return {"attempts": invocation.attempt}

    return {
        "test.record": ActionSpec(StepType("test.record", frozenset({"value"})), record),
        "test.fail": ActionSpec(StepType("test.fail", frozenset()), fail),
        "test.flaky": ActionSpec(StepType("test.flaky", frozenset()), flaky),
    }


RUNBOOK = """\
name: sample
params:
  value: {type: integer, required: true}
steps:
  - id: first
    type: test.record
    params: {value: "{{ params.value }}"}
  - id: second
    type: {second_type}
    needs: [first]
    retry: {attempts: 3, backoff: 1s}
  - id: third
    type: test.record
    needs: [second]
    params: {value: "{{ steps.first.value }}"}
compensation:
  - id: undo
    type: test.record
    params: {value: "undo-{{ steps.first.value }}"}
on_failure: [undo]
"""


@pytest.fixture
def world() -> World:
    return World()


def make_engine(
    tmp_path: Path, world: World, second_type: str
) -> tuple[WorkflowEngine, RecordingObserver]:
    path = tmp_path / "sample.yaml"
    path.write_text(RUNBOOK.replace("{second_type}", second_type), encoding="utf-8")
    specs = actions(world)
    runbook = load_runbook(path, step_types={k: v.step_type for k, v in specs.items()})
    observer = RecordingObserver()
    engine = WorkflowEngine(
        database_url=f"sqlite:///{tmp_path / 'wf.db'}",
        runbooks={"sample": runbook},
        actions=specs,
        observer=observer,
        clock=ManualClock(),
    )
    engine.launch()
    return engine, observer


@pytest.fixture
def engine_factory(tmp_path: Path, world: World) -> Iterator[Any]:
    made: list[WorkflowEngine] = []

    def build(second_type: str) -> tuple[WorkflowEngine, RecordingObserver]:
        engine, observer = make_engine(tmp_path, world, second_type)
        made.append(engine)
        return engine, observer

    yield build
    for engine in made:
        engine.shutdown()


def test_steps_run_in_needs_order_with_rendered_params(engine_factory: Any, world: World) -> None:
    """Each step runs once, in order, with `{{ }}` references resolved."""
    engine, observer = engine_factory("test.record")
    assert engine.start(workflow_id="wf-1", runbook="sample", params={"value": 7}, incident={})
    result = engine.result("wf-1", timeout=30)
    assert result["outcome"] == "succeeded"
    assert world.effects == ["first:7", "second:None", "third:7"]
    assert ("finished", "wf-1", "succeeded") in observer.events


def test_a_failed_step_runs_compensation_and_stops(engine_factory: Any, world: World) -> None:
    """After a failing step, compensation runs with earlier outputs and later steps do not."""
    engine, _ = engine_factory("test.fail")
    engine.start(workflow_id="wf-2", runbook="sample", params={"value": 3}, incident={})
    result = engine.result("wf-2", timeout=30)
    assert result["outcome"] == "rolled_back"
    assert result["failed_step"] == "second"
    assert world.effects == ["first:3", "second:failed", "undo:undo-3"]


def test_temporary_failures_are_retried(engine_factory: Any, world: World) -> None:
    """A step failing with TemporaryError twice succeeds on its third attempt."""
    engine, _ = engine_factory("test.flaky")
    engine.start(workflow_id="wf-3", runbook="sample", params={"value": 1}, incident={})
    result = engine.result("wf-3", timeout=30)
    assert result["outcome"] == "succeeded"
    assert result["steps"]["second"]["attempts"] == 3
    assert [e for e in world.effects if e.startswith("second")] == [
        "second:attempt1",
        "second:attempt2",
        "second:attempt3",
    ]


def test_starting_the_same_workflow_id_twice_runs_it_once(
    engine_factory: Any, world: World
) -> None:
    """The workflow ID is an idempotency key: a second start is refused and nothing reruns."""
    engine, _ = engine_factory("test.record")
    assert engine.start(workflow_id="wf-4", runbook="sample", params={"value": 2}, incident={})
    engine.result("wf-4", timeout=30)
    assert not engine.start(workflow_id="wf-4", runbook="sample", params={"value": 2}, incident={})
    assert world.effects == ["first:2", "second:None", "third:2"]
