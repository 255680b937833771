"""`selfheal policy ...`: test and lint a directory of Rego policy files.

`policy test DIR` runs every `test_` rule (docs/policies.md, "Testing and linting
policies"). The tests run in a child process, because some Rego crashes the engine's whole
process rather than raising: regorus does not refuse a function that calls itself, and
evaluating one overflows the stack (SIGSEGV). The child announces each test before running
it, so when it dies the test it was running is known: that test is an ERROR, and a new child
runs the tests not yet reported, skipping the ones that crashed. The child is forked, not
spawned: spawning would re-run `python -m selfheal` in the child and import the whole CLI
again (seconds), and the parent holds no engine or thread a fork could copy mid-flight.

`policy lint DIR` compiles the files and checks the runbooks and params the decision
package's plans name against the runbooks directory (`selfheal.decision.lint`). With
`--role FILE` it also checks every step of those runbooks against the Role the controller is
deployed with (`selfheal.runtime.role_check`): a step the Role does not allow is a problem,
named at the step's file:line with the verb and resource it lacks.

Exit codes: 0 all good, 1 a test failed or lint found a problem, 2 the input is wrong (a
file does not parse, a directory is missing or has no `.rego` file).
"""

from __future__ import annotations

import multiprocessing
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Annotated, Any

import typer

from selfheal.decision import lint, policy
from selfheal.decision.engine import PolicyEngine, PolicyError, RuleRef
from selfheal.decision.regorus_engine import RegorusEngine
from selfheal.domain.errors import ConfigError, SourceLocation
from selfheal.runtime import controller, rbac, role_check
from selfheal.workflows import runbook as runbook_module

policy_app = typer.Typer(
    name="policy",
    help="Rego policies: run their tests, lint their plans against the runbooks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

DirectoryArgument = Annotated[
    Path, typer.Argument(help="A directory of .rego files.", metavar="DIR", show_default=False)
]

# Long enough for any test of a decision policy (the example's run in milliseconds), short
# enough that a runaway evaluation does not hang CI for its whole job timeout.
DEFAULT_TEST_TIMEOUT = 60.0


def _fail(error: ConfigError) -> typer.Exit:
    print(f"error: {error}", file=sys.stderr)
    return typer.Exit(code=2)


@policy_app.command("test")
def run_policy_tests(
    directory: DirectoryArgument,
    timeout: Annotated[
        float,
        typer.Option("--timeout", min=0.1, help="Seconds one test may run before it is an ERROR."),
    ] = DEFAULT_TEST_TIMEOUT,
) -> None:
    """Run every Rego `test_` rule; exit 0 when all pass, 1 when any does not, 2 on bad input."""
    try:
        _require_rego_files(directory)
        report = run_isolated(directory, timeout=timeout)
    except ConfigError as error:
        raise _fail(error) from None
    for result in report.results:
        print(f"{result.outcome.name} {result.package}.{result.name} ({result.location})")
        for line in result.message.splitlines():
            print(f"    {line}")
    if not report.results:
        print(f"no tests: no rule in {directory}'s .rego files is named test_*", file=sys.stderr)
    passed = report.count(policy.TestOutcome.PASS)
    print(f"PASS: {passed}/{len(report.results)}")
    raise typer.Exit(code=0 if report.ok else 1)


def _require_rego_files(directory: Path) -> None:
    if not directory.is_dir():
        problem = "not a directory" if directory.exists() else "no such directory"
        raise ConfigError(
            f"{problem}: give the directory of .rego files", location=SourceLocation(str(directory))
        )
    if next(directory.rglob("*.rego"), None) is None:
        raise ConfigError("no .rego files here", location=SourceLocation(str(directory)))


# --- Running the tests in a child process, so that a crash is one test's ERROR.


class _Announcing:
    """The child's PolicyEngine: says which test is next, and hides the tests to skip."""

    def __init__(self, sender: Connection, *, skip: frozenset[str]) -> None:
        self._engine: PolicyEngine = RegorusEngine()
        self._sender = sender
        self._skip = skip
        self._rules: dict[str, RuleRef] = {}

    def load(self, modules: Mapping[str, str]) -> None:
        self._engine.load(modules)

    def packages(self) -> list[str]:
        return self._engine.packages()

    def rules(self, package: str) -> list[RuleRef]:
        rules = [rule for rule in self._engine.rules(package) if rule.query not in self._skip]
        self._rules.update((rule.query, rule) for rule in rules)
        return rules

    def evaluate(
        self,
        query: str,
        *,
        input: Mapping[str, Any] | None,  # noqa: A002 - the port's name
        data: Mapping[str, Any] | None = None,
    ) -> Any:
        if query in self._rules:
            self._sender.send(("start", self._rules[query]))
        return self._engine.evaluate(query, input=input, data=data)

    def evaluate_many(
        self, query: str, *, inputs: Sequence[Mapping[str, Any]]
    ) -> list[Any | PolicyError]:
        return self._engine.evaluate_many(query, inputs=inputs)

    def close(self) -> None:
        self._engine.close()


def _child(directory: Path, skip: frozenset[str], sender: Connection) -> None:
    """The child process: run the tests not in `skip` and send the report (or the failure)."""
    try:
        report = policy.run_tests(directory, engine_factory=lambda: _Announcing(sender, skip=skip))
    except ConfigError as error:
        sender.send(("config_error", error.detail, error.location))
    except BaseException as exc:  # noqa: BLE001 - anything else is the running test's ERROR
        sender.send(("failed", f"{type(exc).__name__}: {exc}"))
    else:
        sender.send(("report", report.results))
    finally:
        sender.close()


@dataclass(slots=True)
class _Attempt:
    """What one child did: the tests it started, in order, and its report or how it died."""

    started: list[tuple[RuleRef, float]] = field(default_factory=list)
    results: tuple[policy.TestResult, ...] | None = None
    failure: str = ""


def run_isolated(directory: Path, *, timeout: float) -> policy.TestReport:
    """`policy.run_tests` in child processes: a test that kills one is that test's ERROR.

    Raises ConfigError when a file does not compile, or when the engine dies before any test
    starts (then there is no test to blame).
    """
    crashed: dict[str, policy.TestResult] = {}
    order: dict[str, None] = {}  # every test's query, in the order the tests run
    while True:
        attempt = _attempt(directory, skip=frozenset(crashed), timeout=timeout)
        for rule, _ in attempt.started:
            order.setdefault(rule.query)
        if attempt.results is not None:
            break
        if not attempt.started:
            raise ConfigError(
                f"the Rego engine failed before any test started: {attempt.failure}",
                location=SourceLocation(str(directory)),
            )
        # Progress: the test that crashed is skipped from now on, so this loop ends.
        rule, started = attempt.started[-1]
        crashed[rule.query] = policy.TestResult(
            package=rule.package,
            name=rule.name,
            source=rule.source,
            line=rule.line,
            outcome=policy.TestOutcome.ERROR,
            message=attempt.failure,
            duration=time.perf_counter() - started,
        )
    by_query = {f"data.{r.package}.{r.name}": r for r in attempt.results} | crashed
    return policy.TestReport(tuple(by_query[query] for query in order if query in by_query))


def _attempt(directory: Path, *, skip: frozenset[str], timeout: float) -> _Attempt:
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(directory, skip, sender), daemon=True)
    child.start()
    sender.close()  # the child holds the only writer now, so its death ends the pipe
    attempt = _Attempt()
    try:
        while True:
            if not receiver.poll(timeout):
                child.kill()
                attempt.failure = f"still running after {timeout:g}s; stopped"
                break
            try:
                message = receiver.recv()
            except EOFError:
                attempt.failure = _death(child)
                break
            if message[0] == "start":
                attempt.started.append((message[1], time.perf_counter()))
            elif message[0] == "report":
                attempt.results = message[1]
                break
            elif message[0] == "config_error":
                raise ConfigError(message[1], location=message[2])
            else:
                attempt.failure = f"evaluating this test failed: {message[1]}"
                break
    finally:
        receiver.close()
        child.join()
    return attempt


def _death(child: Any) -> str:
    child.join()
    code = child.exitcode
    if code is not None and code < 0:
        name = signal.Signals(-code).name
        return (
            f"the Rego engine crashed the process ({name}) evaluating this test; "
            "a function that calls itself is a known cause"
        )
    return f"the Rego engine's process ended (exit code {code}) evaluating this test"


# --- Lint.


@policy_app.command("lint")
def lint_policies(
    directory: DirectoryArgument,
    runbooks: Annotated[
        Path | None,
        typer.Option(
            "--runbooks",
            help="The runbooks directory the plans must match. Default: DIR/../runbooks",
            show_default=False,
        ),
    ] = None,
    role: Annotated[
        Path | None,
        typer.Option(
            "--role",
            help="A YAML file with the Role (or ClusterRole) the controller is deployed with: "
            "every runbook step must be allowed by it.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Check that the files compile and plans choose runbooks and params that exist.

    With --role, also that the deployed Role allows every step of those runbooks.
    """
    try:
        _require_rego_files(directory)
        loaded = runbook_module.load_runbooks(
            runbooks or _default_runbooks(directory), step_types=controller.step_types()
        )
        deployed = role_check.load_role(role) if role is not None else None
        report = lint.lint_directory(directory, runbooks=_signatures(loaded))
    except ConfigError as error:
        raise _fail(error) from None
    for finding in report.findings:
        print(finding)
    refused = role_check.refusals(deployed, loaded) if deployed is not None else []
    for refusal in refused:
        print(refusal)
    files, checked = len(report.policy_files), report.checked
    checks = f"{files} policy files, {checked} plans checked"
    if deployed is not None:
        steps = len(rbac.step_needs(loaded))
        checks += f", {steps} runbook steps checked against {deployed.kind} {deployed.name}"
    if report.ok and not refused:
        print(f"ok: {checks}")
        raise typer.Exit(code=0)
    print(f"{len(report.problems) + len(refused)} problems in {checks}")
    raise typer.Exit(code=1)


def _default_runbooks(directory: Path) -> Path:
    found = directory.absolute().parent / "runbooks"
    if not found.is_dir():
        raise ConfigError(
            f"no runbooks directory next to the policies ({found}); name one with --runbooks",
            location=SourceLocation(str(directory)),
        )
    return found


def _signatures(loaded: Mapping[str, runbook_module.Runbook]) -> dict[str, lint.RunbookSignature]:
    return {
        name: lint.RunbookSignature(
            params=frozenset(book.params),
            required=frozenset(param for param, spec in book.params.items() if spec.required),
        )
        for name, book in loaded.items()
    }
