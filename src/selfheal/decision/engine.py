"""The policy-engine port: load Rego modules, evaluate a query, list a package's rules.

Policies are Rego v1. The engine is a third-party library behind this Protocol, so that it
can be swapped (two candidates were tried, see docs/policies.md) and so that one conformance
suite (`tests/decision/test_engine_conformance.py`) pins the behaviour we rely on: errors
with file:line:col, undefined as None, Rego sets as sorted lists, `with input as`, and a
failed load that leaves the previous modules active.

Errors, by what the caller does next:

    ConfigError     a module does not parse or compile: fix the file (location says where)
    PolicyError     evaluation failed (conflicting outputs, a bad query, input that is not
                    JSON, an output that breaks the contract): retrying cannot help
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from selfheal.domain.errors import PermanentError, SourceLocation


class PolicyError(PermanentError):
    """A policy could not be evaluated, or its output breaks the contract.

    `location` names the rule (file:line:col) or the output's JSON path when known.
    """

    def __init__(self, message: str, *, location: SourceLocation | None = None) -> None:
        self.location = location
        self.detail = message
        super().__init__(f"{location}: {message}" if location else message)


@dataclass(frozen=True, slots=True)
class RuleRef:
    """A rule as declared in a module: its package, name and where it is first defined.

    `package` is written as in a `package` line (`selfheal.remediation`, or `a["b-c"]` for a
    segment that is not an identifier); `name` is the rule's path inside the package.
    """

    package: str
    name: str
    source: str
    line: int
    column: int

    @property
    def query(self) -> str:
        """The reference that evaluates this rule."""
        return f"data.{self.package}.{self.name}"

    @property
    def location(self) -> SourceLocation:
        return SourceLocation(self.source, self.line, self.column)


class PolicyEngine(Protocol):
    """An in-process Rego engine holding one set of modules at a time.

    Implementations are safe to call from several threads at once, and translate every
    exception of the library they wrap into `ConfigError` or `PolicyError`.
    """

    def load(self, modules: Mapping[str, str]) -> None:
        """Replace the loaded modules with `modules` (file path -> Rego source).

        Raises ConfigError naming file:line:col if any module fails to parse or compile;
        the previously loaded modules then stay active, untouched.
        """
        ...

    def evaluate(
        self,
        query: str,
        *,
        input: Mapping[str, Any] | None,  # noqa: A002 - Rego's own name for the document
        data: Mapping[str, Any] | None = None,
    ) -> Any:
        """Evaluate a query (usually a reference such as `data.selfheal.remediation`).

        `input=None` leaves `input` undefined, as `opa test` does. `data` is merged into
        the data document for this call only. The result is plain JSON-like Python (dict,
        list, str, int, float, bool, None), Rego sets become sorted lists, and an undefined
        result is None. Raises PolicyError if evaluation fails.
        """
        ...

    def evaluate_many(
        self, query: str, *, inputs: Sequence[Mapping[str, Any]]
    ) -> list[Any | PolicyError]:
        """`evaluate` for each input, in order, in one go; a failing input gets its error.

        A storm's decisions are evaluated in batches: the engine pays its per-call overhead
        (a hand-off to the thread that owns it) once per batch, not once per incident.
        """
        ...

    def packages(self) -> list[str]:
        """The packages the loaded modules declare, sorted."""
        ...

    def rules(self, package: str) -> list[RuleRef]:
        """The rules (not functions) a package declares, in source order, one per name."""
        ...

    def close(self) -> None:
        """Release the engine's resources; it must not be used afterwards."""
        ...
