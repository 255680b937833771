"""The runbook interpreter, run durably on DBOS. The only module that imports `dbos`.

One generic DBOS workflow interprets any runbook: it walks the steps in `needs` order and
runs each as one DBOS step, so a completed step is never run again after a crash, and a step
interrupted mid-way runs again (actions are idempotent, see steps.py). When a step fails
after its retries, the step's compensation runs and the workflow ends.

The workflow ID is the idempotency key the caller derives from the incident: starting a
workflow whose ID exists returns the existing one, so a re-fired alert never runs a runbook
twice. DBOS is a process-wide singleton; so is the registry of runbooks and actions that the
workflow function finds at run time (also after recovery, when DBOS calls it with only its
stored arguments).

Workflow code is deterministic: times, IDs and outcomes come from steps, never from the
workflow body.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from dbos import DBOS, DBOSConfig, SetWorkflowID

from selfheal.domain.actions import ActionSpec, Invocation, Memo, StepFailed
from selfheal.domain.errors import ConfigError, SelfhealError, TemporaryError
from selfheal.domain.time import Clock
from selfheal.workflows import templating
from selfheal.workflows.runbook import Runbook, Step

_log = logging.getLogger(__name__)
APP_VERSION = "selfheal-runbooks-1"
# How long (real seconds) `start` waits for a new workflow's thread to begin.
_ENTER_TIMEOUT_S = 5.0
# Scenario seconds a workflow sleeps at a time, so that a stop interrupts a long sleep.
_SLEEP_SLICE_S = 1.0
# Real seconds between tries to record a run's progress while the store is away.
_STORE_RETRY_FIRST_S = 0.2
_STORE_RETRY_MAX_S = 5.0
T = TypeVar("T")
# How long (real seconds) a stop waits for running steps to finish their current call.
STOP_DEADLINE_S = 15.0


class WorkflowObserver(Memo, Protocol):
    """Where the interpreter reports progress (the store and audit, wired by runtime)."""

    def workflow_started(
        self,
        *,
        workflow_id: str,
        runbook: str,
        params: Mapping[str, Any],
        incident: Mapping[str, Any],
        at: float,
        waits_for_approval: bool = False,
    ) -> None: ...

    def step_finished(
        self,
        *,
        workflow_id: str,
        step_id: str,
        step_type: str,
        params: Mapping[str, Any],
        status: str,
        output: Mapping[str, Any],
        error: str,
        attempts: int,
        compensation: bool,
        at: float,
    ) -> None: ...

    def workflow_finished(
        self, *, workflow_id: str, outcome: str, summary: Mapping[str, Any], at: float
    ) -> None: ...


class EngineStopping(BaseException):
    """Raised in a workflow's thread when the engine stops: unwind, record nothing.

    A BaseException on purpose: DBOS records a step's or a workflow's `Exception` as its
    outcome, and a workflow recorded as failed is never resumed. This one passes through
    DBOS unrecorded, so the workflow stays pending and resumes at its interrupted step when
    the controller starts again (steps are idempotent).
    """


class _StoppableClock:
    """The engine's clock as workflow steps see it: sleeps end early when the engine stops."""

    def __init__(self, clock: Clock, stopping: threading.Event) -> None:
        self._clock = clock
        self._stopping = stopping

    def now(self) -> float:
        return self._clock.now()

    async def sleep(self, seconds: float) -> None:
        await asyncio.to_thread(self.sleep_blocking, seconds)

    def sleep_blocking(self, seconds: float) -> None:
        # In slices of scenario time, so a stop is noticed within one slice.
        end = self._clock.now() + max(0.0, seconds)
        while (left := end - self._clock.now()) > 0:
            if self._stopping.is_set():
                raise EngineStopping
            self._clock.sleep_blocking(min(left, _SLEEP_SLICE_S))
        if self._stopping.is_set():
            raise EngineStopping

    def hold(self) -> AbstractContextManager[None]:
        return self._clock.hold()


def _until_stored(write: Callable[[], T]) -> T:
    """Run a write of the run's record, retrying while the store is away.

    A step's effect is done or not whatever the store says; what it did must be recorded
    before the run goes on. So, as the workflow engine does with its own database, a run
    waits for the store to come back (a restarted server, a locked file) instead of failing
    the runbook for it; an engine that stops meanwhile unwinds it, to resume here later.
    """
    pause = _STORE_RETRY_FIRST_S
    while True:
        try:
            return write()
        except TemporaryError as exc:
            _log.warning("cannot record the run's progress (%s); retrying", exc)
            if _registry.stopping.wait(pause):
                raise EngineStopping from exc
            pause = min(pause * 2, _STORE_RETRY_MAX_S)


@dataclass
class _Registry:
    runbooks: dict[str, Runbook] = field(default_factory=dict)
    actions: dict[str, ActionSpec] = field(default_factory=dict)
    observer: WorkflowObserver | None = None
    clock: Clock | None = None
    # Workflows started but not yet running, each with the event its first line sets.
    entering: dict[str, threading.Event] = field(default_factory=dict)
    # Set when the engine stops: workflows unwind at their next sleep or step.
    stopping: threading.Event = field(default_factory=threading.Event)
    # Blocks until this replica may have effects (fencing), False if it must stop instead;
    # asked before each step's action.
    wait_to_act: Callable[[threading.Event], bool] = field(default=lambda _stopping: True)
    # How many workflow threads are running our code now.
    active: int = 0
    active_lock: threading.Lock = field(default_factory=threading.Lock)


_registry = _Registry()


@DBOS.step()
def _record_start(request: dict[str, Any]) -> float:
    observer, clock = _require()
    at = clock.now()
    _until_stored(
        lambda: observer.workflow_started(
            workflow_id=request["workflow_id"],
            runbook=request["runbook"],
            params=request["params"],
            incident=request["incident"],
            at=at,
            waits_for_approval=bool(request.get("approval")),
        )
    )
    return at


@DBOS.step()
def _record_finish(workflow_id: str, outcome: str, summary: dict[str, Any]) -> float:
    observer, clock = _require()
    at = clock.now()
    _until_stored(
        lambda: observer.workflow_finished(
            workflow_id=workflow_id, outcome=outcome, summary=summary, at=at
        )
    )
    return at


@DBOS.step()
def _run_step(
    request: dict[str, Any],
    step_spec: dict[str, Any],
    context: dict[str, Any],
    *,
    compensation: bool,
) -> dict[str, Any]:
    """Run one runbook step: render params, call the action with retries and a deadline."""
    observer, clock = _require()
    step = Step.model_validate(step_spec)
    action = _registry.actions[step.type]
    output: dict[str, Any] = {}
    error = ""
    attempts = 0
    try:
        lenient = "unknown" if action.step_type.lenient_templates else None
        params = templating.render(step.params, context, missing=lenient)
    except templating.TemplateError as exc:
        params, error = dict(step.params), str(exc)
    deadline = clock.now() + step.timeout
    backoff = step.retry.backoff
    while not error:
        attempts += 1
        invocation = Invocation(
            workflow_id=request["workflow_id"],
            runbook=request["runbook"],
            step_id=step.id,
            step_type=step.type,
            attempt=attempts,
            deadline=deadline,
            clock=clock,
            incident=request["incident"],
            memo=observer,
        )
        if not _registry.wait_to_act(_registry.stopping):
            # Fenced: another replica has this workflow now (or the engine stops). Unwind
            # unrecorded; whoever owns the workflow runs this step.
            raise EngineStopping
        try:
            output = dict(action.run(params, invocation))
            break
        except TemporaryError as exc:
            error, output, retryable = str(exc), {}, True
        except StepFailed as exc:
            error, output, retryable = str(exc), exc.output, False
        except SelfhealError as exc:
            error, output, retryable = str(exc), {}, False
        except Exception as exc:  # noqa: BLE001 - an action bug must fail the step, not the engine
            _log.exception("step %s of %s crashed", step.id, request["workflow_id"])
            error, output, retryable = f"{type(exc).__name__}: {exc}", {}, False
        if retryable and attempts < step.retry.attempts and clock.now() < deadline:
            clock.sleep_blocking(min(backoff, max(0.0, deadline - clock.now())))
            backoff *= 2
            error = ""
    if not error and clock.now() > deadline:
        error = f"step {step.id!r} ran past its timeout of {step.timeout:g}s"
    status = "failed" if error else "ok"
    if error:
        # What the step found out before it failed (its memo: the replicas it read before
        # scaling, say) is part of what it reports, so compensation can use it.
        memo = _until_stored(lambda: observer.recall_all(f"{request['workflow_id']}/{step.id}"))
        output = {**memo, **output}
    finished_at = clock.now()
    _until_stored(
        lambda: observer.step_finished(
            workflow_id=request["workflow_id"],
            step_id=step.id,
            step_type=step.type,
            params=params,
            status=status,
            output=output,
            error=error,
            attempts=attempts,
            compensation=compensation,
            at=finished_at,
        )
    )
    return {"status": status, "output": output, "error": error, "attempts": attempts}


@DBOS.workflow()
def run_runbook(request: dict[str, Any]) -> dict[str, Any]:
    """Interpret one runbook for one incident (the DBOS workflow).

    The workflow holds the clock while it works, so a stepped scenario clock moves on only
    when the runbook sleeps on it (see `SteppedClock`): its calls land at the same scenario
    time on every run.
    """
    _, clock = _require()
    with _registry.active_lock:
        _registry.active += 1
    try:
        with clock.hold():
            entered = _registry.entering.pop(request["workflow_id"], None)
            if entered is not None:
                entered.set()
            return _interpret(request)
    finally:
        with _registry.active_lock:
            _registry.active -= 1


def _interpret(request: dict[str, Any]) -> dict[str, Any]:
    runbook = _registry.runbooks[request["runbook"]]
    _record_start(request)
    context: dict[str, Any] = {
        "params": request["params"],
        "incident": request["incident"],
        "steps": {},
    }
    results: dict[str, Any] = {}
    gate = request.get("approval")
    if gate:
        # People first: nothing runs until they approve; a deny or the timeout ends the run
        # with nothing changed, so there is nothing to compensate.
        spec = approval_step(runbook.name, timeout=gate["timeout"], approvers=gate["approvers"])
        result = _run_step(request, spec, context, compensation=False)
        results["approval"] = result
        context["steps"]["approval"] = _step_context(result)
        if result["status"] != "ok":
            summary = {"failed_step": "approval", "error": result["error"], "steps": results}
            _record_finish(request["workflow_id"], "denied", {**summary, "compensation": {}})
            return {"outcome": "denied", **summary, "compensation": {}}
    for step in runbook.order():
        result = _run_step(request, step.model_dump(mode="json"), context, compensation=False)
        results[step.id] = result
        context["steps"][step.id] = _step_context(result)
        if result["status"] == "ok":
            continue
        # Compensation runs every step, whatever the one before it did, and knows what
        # failed: a rollback that fails must not keep the page after it from going out.
        context["failure"] = {"step": step.id, "error": result["error"]}
        compensated: dict[str, Any] = {}
        for fix in runbook.compensation_for(step):
            fix_result = _run_step(request, fix.model_dump(mode="json"), context, compensation=True)
            compensated[fix.id] = fix_result
            context["steps"][fix.id] = _step_context(fix_result)
        all_ok = bool(compensated) and all(r["status"] == "ok" for r in compensated.values())
        outcome = "rolled_back" if all_ok else "failed"
        summary = {
            "failed_step": step.id,
            "error": result["error"],
            "steps": results,
            "compensation": compensated,
        }
        _record_finish(request["workflow_id"], outcome, summary)
        return {"outcome": outcome, **summary}
    summary = {"failed_step": None, "error": "", "steps": results, "compensation": {}}
    _record_finish(request["workflow_id"], "succeeded", summary)
    return {"outcome": "succeeded", **summary}


def _step_context(result: Mapping[str, Any]) -> dict[str, Any]:
    """A finished step as later steps' templates see it: output, status, error, summary."""
    failed = result["status"] != "ok"
    summary = result["output"].get("summary") if not failed else None
    return {
        **result["output"],
        "status": result["status"],
        "error": result["error"],
        "summary": summary or (f"FAILED: {result['error']}" if failed else "done"),
    }


def approval_step(runbook: str, *, timeout: float, approvers: int) -> dict[str, Any]:
    """The step that waits for people; its own timeout leaves the wait room to finish."""
    return Step(
        id="approval",
        type="approval.wait",
        description="Wait for people to approve; deny on timeout.",
        params={"timeout": timeout, "approvers": approvers, "runbook": runbook},
        timeout=timeout + 60.0,
    ).model_dump(mode="json")


def _require() -> tuple[WorkflowObserver, Clock]:
    if _registry.observer is None or _registry.clock is None:
        raise RuntimeError("the workflow engine is not configured")
    if _registry.stopping.is_set():
        raise EngineStopping
    return _registry.observer, _StoppableClock(_registry.clock, _registry.stopping)


class WorkflowEngine:
    """Start, watch and recover runbook workflows (DBOS on SQLite or PostgreSQL)."""

    def __init__(
        self,
        *,
        database_url: str,
        runbooks: Mapping[str, Runbook],
        actions: Mapping[str, ActionSpec],
        observer: WorkflowObserver,
        clock: Clock,
        executor_id: str = "local",
        wait_to_act: Callable[[threading.Event], bool] | None = None,
        idle_in_transaction_s: float = 60.0,
    ) -> None:
        missing = sorted(
            {
                step.type
                for runbook in runbooks.values()
                for step in (*runbook.steps, *runbook.compensation)
            }
            - set(actions)
        )
        if missing:
            raise ConfigError(f"no action implements step types {missing}")
        self._database_url = database_url
        # Workflows belong to the executor that started them (a replica); another takes
        # them over only through `recover`, once that replica is known dead.
        self._executor_id = executor_id
        self._idle_in_transaction_s = idle_in_transaction_s
        self._lock = threading.Lock()
        _registry.runbooks = dict(runbooks)
        _registry.actions = dict(actions)
        _registry.observer = observer
        _registry.clock = clock
        _registry.stopping = threading.Event()
        _registry.wait_to_act = wait_to_act or (lambda _stopping: True)
        self._clock = clock
        self._launched = False

    def launch(self) -> None:
        """Start DBOS; this executor's workflows left unfinished by a crash resume now."""
        config: DBOSConfig = {
            "name": "selfheal",
            "system_database_url": self._database_url,
            "log_level": "WARNING",
            "application_version": APP_VERSION,
            "executor_id": self._executor_id,
        }
        if self._database_url.startswith("postgresql"):
            # Replicas share the database: few connections each, and a frozen replica's
            # open transaction must not hold the others' up for long (see open_store).
            config["sys_db_pool_size"] = 10
            config["sys_db_idle_transaction_timeout_sec"] = max(1.0, self._idle_in_transaction_s)
        DBOS(config=config)
        DBOS.launch()
        self._launched = True

    def recover(self, executor_ids: Sequence[str]) -> int:
        """Take over the unfinished workflows of other executors (dead replicas); how many.

        They resume here at their interrupted step, as after a crash of this executor.
        """
        if not executor_ids:
            return 0
        return len(DBOS._recover_pending_workflows(list(executor_ids)))  # noqa: SLF001

    def start(
        self,
        *,
        workflow_id: str,
        runbook: str,
        params: Mapping[str, Any],
        incident: Mapping[str, Any],
        approval: Mapping[str, Any] | None = None,
    ) -> bool:
        """Start a runbook unless a workflow with this ID exists; True if it was new.

        With `approval` (`{"timeout": seconds, "approvers": n}`) the run first waits for
        people (`approval.wait`, which must be among the engine's actions).
        """
        if runbook not in _registry.runbooks:
            raise ConfigError(f"no runbook named {runbook!r}")
        if approval is not None and "approval.wait" not in _registry.actions:
            raise ConfigError("approvals need the approval.wait step type")
        resolved = _registry.runbooks[runbook].resolve_params(params)
        with self._lock:
            existing = DBOS.get_workflow_status(workflow_id)
            if existing is not None:
                return False
            request = {
                "workflow_id": workflow_id,
                "runbook": runbook,
                "params": resolved,
                "incident": dict(incident),
                "approval": dict(approval) if approval is not None else None,
            }
            entered = threading.Event()
            _registry.entering[workflow_id] = entered
            with SetWorkflowID(workflow_id):
                DBOS.start_workflow(run_runbook, request)
        # Until the workflow holds the clock, nothing tells a stepped clock to wait for it.
        if not entered.wait(timeout=_ENTER_TIMEOUT_S):
            _registry.entering.pop(workflow_id, None)
            _log.warning("workflow %s has not begun after %ss", workflow_id, _ENTER_TIMEOUT_S)
        return True

    def status(self, workflow_id: str) -> str | None:
        found = DBOS.get_workflow_status(workflow_id)
        return None if found is None else str(found.status)

    def result(self, workflow_id: str, *, timeout: float | None = None) -> dict[str, Any]:
        """Wait (real seconds) for a workflow's result."""
        handle: Any = DBOS.retrieve_workflow(workflow_id)
        if timeout is None:
            outcome: dict[str, Any] = handle.get_result()
            return outcome
        done = threading.Event()
        box: dict[str, Any] = {}

        def wait() -> None:
            try:
                box["result"] = handle.get_result()
            finally:
                done.set()

        threading.Thread(target=wait, daemon=True).start()
        if not done.wait(timeout):
            raise TemporaryError(f"workflow {workflow_id} still running", delay=1.0)
        result: dict[str, Any] = box["result"]
        return result

    def shutdown(self, *, deadline: float = STOP_DEADLINE_S) -> bool:
        """Stop the engine; True if every running workflow unwound within `deadline`.

        Running workflows unwind at their next sleep or step, unrecorded, and resume at
        that step when the engine launches again.

        A step in the middle of a call (to the Kubernetes API, say) finishes it and records
        its result first, so what happened is on the record; waiting stops after `deadline`
        real seconds.
        """
        if not self._launched:
            return True
        _registry.stopping.set()
        free = getattr(self._clock, "run_free", None)
        if callable(free):  # a stepped clock no longer stepped: let its sleepers wake
            free()
        ends = time.monotonic() + deadline
        while _registry.active > 0 and time.monotonic() < ends:
            time.sleep(0.02)
        unwound = _registry.active == 0
        if not unwound:
            _log.warning("%d workflow(s) still in a step at shutdown", _registry.active)
        DBOS.destroy(workflow_completion_timeout_sec=0)
        self._launched = False
        return unwound
