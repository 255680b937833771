"""Policy bundles: a directory of Rego files, the decision it makes, and its tests.

A bundle is every `.rego` file under a directory. Files named `*_test.rego` are tests; the
others are the policy. The controller evaluates `data.selfheal.remediation` with the
incident as `input` and reads three keys of the result, validated here because a policy is
user code: `plans`, `deny` and `requires_approval` (docs/policies.md has the contract).

The bundle hash covers the policy files only, so editing a test does not make decisions
look as if they came from a different policy version in the audit chain.
"""

from __future__ import annotations

import enum
import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import pydantic

from selfheal.decision.engine import PolicyEngine, PolicyError, RuleRef
from selfheal.decision.regorus_engine import RegorusEngine
from selfheal.domain import model
from selfheal.domain.errors import ConfigError, SelfhealError, SourceLocation
from selfheal.formats import sourced_yaml, text_files

DECISION_PACKAGE = "selfheal.remediation"
DECISION_QUERY = f"data.{DECISION_PACKAGE}"
TEST_SUFFIX = "_test.rego"
TEST_PREFIX = "test_"

EngineFactory = Callable[[], PolicyEngine]

_StrictStr = Annotated[str, pydantic.Strict()]


class PlanOutput(pydantic.BaseModel):
    """One plan as a policy writes it: which runbook, with what, how risky, and why."""

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    runbook: Annotated[str, pydantic.Strict(), pydantic.StringConstraints(min_length=1)]
    params: dict[str, Any] = pydantic.Field(default_factory=dict)
    risk: Literal["low", "medium", "high"]
    reason: _StrictStr


class PolicyOutput(pydantic.BaseModel):
    """The part of `data.selfheal.remediation` the controller reads.

    Other keys are the policy's helper rules and are ignored. `plans` and `deny` usually
    come from partial set rules, which the engine renders as sorted lists.
    """

    model_config = pydantic.ConfigDict(frozen=True, extra="ignore")

    plans: tuple[PlanOutput, ...] = ()
    deny: tuple[_StrictStr, ...] = ()
    requires_approval: Annotated[bool, pydantic.Strict()] = False


def parse_output(document: Any) -> PolicyOutput:
    """Validate a decision document; a malformed one raises PolicyError with its JSON path."""
    if document is None:
        raise PolicyError(
            f"{DECISION_QUERY} is undefined: no loaded file declares `package {DECISION_PACKAGE}`"
        )
    try:
        return PolicyOutput.model_validate(document)
    except pydantic.ValidationError as exc:
        error = exc.errors()[0]
        path = sourced_yaml.format_path([part for part in error["loc"] if part != "[key]"])
        location = SourceLocation(DECISION_QUERY, path=path or None)
        raise PolicyError(_describe(error), location=location) from exc


def _describe(error: Any) -> str:
    kind = error.get("type", "")
    if kind == "missing":
        return "required field is missing (a plan needs runbook, risk and reason)"
    if kind == "extra_forbidden":
        return "unknown field in a plan (allowed: runbook, params, risk, reason)"
    return str(error.get("msg", "invalid value"))


def to_plans(output: PolicyOutput) -> tuple[model.Plan, ...]:
    """The output's plans as domain Plans, in the order the policy produced them."""
    return tuple(
        model.Plan(
            runbook=plan.runbook, params=dict(plan.params), risk=plan.risk, reason=plan.reason
        )
        for plan in output.plans
    )


@dataclass(frozen=True, slots=True)
class _RegoFile:
    relative: str
    path: Path
    content: bytes

    @property
    def is_test(self) -> bool:
        return self.relative.endswith(TEST_SUFFIX)

    def text(self) -> str:
        return text_files.decode(self.content, source=str(self.path))


def _read_directory(directory: Path) -> list[_RegoFile]:
    if not directory.is_dir():
        raise ConfigError("not a directory of .rego files", location=SourceLocation(str(directory)))
    files = []
    for path in sorted(directory.rglob("*.rego")):
        # Bytes, not text: the bundle hash is over what is on disk.
        content = text_files.read_bytes(path, kind=text_files.REGO)
        files.append(_RegoFile(path.relative_to(directory).as_posix(), path, content))
    return sorted(files, key=lambda file: file.relative)


def bundle_hash(files: Mapping[str, bytes]) -> str:
    """SHA-256 over (relative path, content) pairs in path order.

    Each part is length-prefixed so that moving bytes between a path and a content, or
    between two files, always changes the hash.
    """
    digest = hashlib.sha256()
    for relative in sorted(files):
        for part in (relative.encode("utf-8"), files[relative]):
            digest.update(f"{len(part)}:".encode())
            digest.update(part)
    return digest.hexdigest()


class PolicyBundle:
    """A loaded policy directory, ready to decide.

    To pick up changes, load a new bundle: a failed load raises and leaves the bundle in
    use untouched, so a bad edit never replaces a good policy.
    """

    def __init__(
        self, *, directory: Path, engine: PolicyEngine, content_hash: str, files: Sequence[str]
    ) -> None:
        self.directory = directory
        self.hash = content_hash
        self.files = tuple(files)
        self._engine = engine

    @classmethod
    def load(
        cls, directory: Path, *, engine_factory: EngineFactory = RegorusEngine
    ) -> PolicyBundle:
        """Read and compile the policy files under `directory` (tests are not loaded).

        Raises ConfigError naming file:line:col for a file that does not compile, and when
        no file declares `package selfheal.remediation`.
        """
        policy = [file for file in _read_directory(directory) if not file.is_test]
        modules = {str(file.path): file.text() for file in policy}
        engine = engine_factory()
        try:
            engine.load(modules)
            _require_decision_package(engine, directory)
        except BaseException:
            engine.close()
            raise
        return cls(
            directory=directory,
            engine=engine,
            content_hash=bundle_hash({file.relative: file.content for file in policy}),
            files=[file.relative for file in policy],
        )

    def evaluate(self, policy_input: Mapping[str, Any]) -> Any:
        """The whole decision document, helper rules included (what the audit records)."""
        return self._engine.evaluate(DECISION_QUERY, input=policy_input)

    def evaluate_many(self, inputs: Sequence[Mapping[str, Any]]) -> list[Any | PolicyError]:
        """`evaluate` for many inputs at once; each failing input gets its PolicyError."""
        return self._engine.evaluate_many(DECISION_QUERY, inputs=inputs)

    def decide(self, policy_input: Mapping[str, Any]) -> PolicyOutput:
        """Evaluate the policy for one input; PolicyError if it fails or breaks the contract."""
        return parse_output(self.evaluate(policy_input))

    def close(self) -> None:
        self._engine.close()


def _require_decision_package(engine: PolicyEngine, directory: Path) -> None:
    if DECISION_PACKAGE not in engine.packages():
        raise ConfigError(
            f"no policy file declares `package {DECISION_PACKAGE}`; the controller reads its "
            f"decision from {DECISION_QUERY}",
            location=SourceLocation(str(directory)),
        )


class TestOutcome(enum.StrEnum):
    """A Rego test's result: true passes; false or undefined fails; an engine error errs."""

    __test__ = False  # not a pytest class, whatever its name says

    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class TestResult:
    """One `test_` rule's outcome and where the rule is."""

    __test__: ClassVar[bool] = False

    package: str
    name: str
    source: str
    line: int
    outcome: TestOutcome
    message: str = ""
    duration: float = 0.0

    @property
    def location(self) -> SourceLocation:
        return SourceLocation(self.source, self.line)


@dataclass(frozen=True, slots=True)
class TestReport:
    """Every test of a directory, in package then source order."""

    __test__: ClassVar[bool] = False

    results: tuple[TestResult, ...]

    def count(self, outcome: TestOutcome) -> int:
        return sum(1 for result in self.results if result.outcome is outcome)

    @property
    def ok(self) -> bool:
        """True when every test passed (a directory without tests is not ok)."""
        return bool(self.results) and self.count(TestOutcome.PASS) == len(self.results)


def run_tests(directory: Path, *, engine_factory: EngineFactory = RegorusEngine) -> TestReport:
    """Evaluate every `test_` rule of every package in the directory's `.rego` files.

    Tests run without `input`; they set it with `with input as {...}`. A test that makes the
    engine fail is that test's ERROR and the others still run. A file that does not compile
    raises ConfigError: then no test can run.
    """
    modules = {str(file.path): file.text() for file in _read_directory(directory)}
    engine = engine_factory()
    try:
        engine.load(modules)
        tests = [
            rule
            for package in engine.packages()
            for rule in engine.rules(package)
            if rule.name.startswith(TEST_PREFIX)
        ]
        return TestReport(tuple(_run_one(engine, test) for test in tests))
    finally:
        engine.close()


def _run_one(engine: PolicyEngine, test: RuleRef) -> TestResult:
    # Test timing is for people reading the report; nothing decides on it.
    started = time.perf_counter()
    try:
        value = engine.evaluate(test.query, input=None)
    except SelfhealError as exc:
        outcome, message = TestOutcome.ERROR, str(exc)
    else:
        outcome, message = _judge(value)
    return TestResult(
        package=test.package,
        name=test.name,
        source=test.source,
        line=test.line,
        outcome=outcome,
        message=message,
        duration=time.perf_counter() - started,
    )


def _judge(value: Any) -> tuple[TestOutcome, str]:
    if value is True:
        return TestOutcome.PASS, ""
    if value is None:
        return TestOutcome.FAIL, "undefined: an expression in the test's body did not hold"
    return TestOutcome.FAIL, f"evaluated to {value!r}, not true"
