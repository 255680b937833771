"""Static checks of a policy directory: does it compile, and do its plans name real runbooks?

The controller finds out that a plan chose a runbook that does not exist, or passed it a
parameter it does not take, only when an incident makes the policy produce that plan: at
the worst moment. This module finds the plans in the source instead. It compiles every
`.rego` file (a file that does not compile is a ConfigError naming file:line:col), then
scans the policy files of the decision package for object literals with a `"runbook"` key,
the shape of a plan, and checks each against the runbooks it is given.

The scan is lexical, not an evaluation: it sees `"runbook": "scale-up"` and the keys of a
`"params": {...}` literal, and says so (a warning) when a plan's runbook or params are
computed and cannot be checked. Object comprehensions are not plans and are skipped. The
runbooks come from the caller as names and parameter declarations, because the decision
package does not know the workflows package.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from selfheal.decision.engine import PolicyEngine
from selfheal.decision.policy import DECISION_PACKAGE, TEST_SUFFIX, EngineFactory
from selfheal.decision.regorus_engine import RegorusEngine
from selfheal.domain.errors import ConfigError, SourceLocation
from selfheal.formats import text_files

__all__ = [
    "Finding",
    "LintReport",
    "PlanLiteral",
    "RunbookSignature",
    "Severity",
    "find_plans",
    "lint_directory",
]


@dataclass(frozen=True, slots=True)
class RunbookSignature:
    """What a plan must match: a runbook's parameter names, and which of them are required."""

    params: frozenset[str]
    required: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class PlanLiteral:
    """A plan object written in the source: `{"runbook": ..., "params": {...}, ...}`.

    `runbook` is None when the name is not a string literal; `params` is None when the
    params are not an object literal (absent params are an empty literal: `{}` is the
    default). Each name comes with where it is written.
    """

    location: SourceLocation
    runbook: str | None
    runbook_location: SourceLocation
    params: tuple[tuple[str, SourceLocation], ...] | None
    params_location: SourceLocation | None = None


class Severity(enum.StrEnum):
    """A problem fails the lint; a warning is shown but passes."""

    PROBLEM = "problem"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing lint says, at the place it is about."""

    location: SourceLocation
    message: str
    severity: Severity = Severity.PROBLEM

    def __str__(self) -> str:
        prefix = "warning: " if self.severity is Severity.WARNING else ""
        return f"{self.location}: {prefix}{self.message}"


@dataclass(frozen=True, slots=True)
class LintReport:
    """The policy files scanned, the plans found in them, and what is wrong with them."""

    policy_files: tuple[str, ...]
    plans: tuple[PlanLiteral, ...]
    findings: tuple[Finding, ...] = field(default=())

    @property
    def problems(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.PROBLEM)

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.WARNING)

    @property
    def checked(self) -> int:
        """Plans whose runbook is a literal, so that it could be checked."""
        return sum(1 for plan in self.plans if plan.runbook is not None)

    @property
    def ok(self) -> bool:
        return not self.problems


def lint_directory(
    directory: Path,
    *,
    runbooks: Mapping[str, RunbookSignature],
    engine_factory: EngineFactory = RegorusEngine,
) -> LintReport:
    """Compile every `.rego` file under `directory`, then check its plans against `runbooks`.

    Raises ConfigError (naming file:line:col when the engine says where) if the directory
    has no `.rego` file, a file does not compile, or no file declares the decision package.
    """
    sources = _read_sources(directory)
    _compile(sources, directory=directory, engine_factory=engine_factory)
    policy_files = [path for path in sources if not path.endswith(TEST_SUFFIX)]
    plans = [
        plan
        for path in policy_files
        if _package(sources[path]) == DECISION_PACKAGE
        for plan in find_plans(sources[path], source=path)
    ]
    findings = [finding for plan in plans for finding in _check(plan, runbooks)]
    return LintReport(tuple(policy_files), tuple(plans), tuple(findings))


def _read_sources(directory: Path) -> dict[str, str]:
    if not directory.is_dir():
        raise ConfigError("not a directory", location=SourceLocation(str(directory)))
    sources: dict[str, str] = {}
    for path in sorted(directory.rglob("*.rego")):
        sources[str(path)] = text_files.read_text(path, kind=text_files.REGO)
    if not sources:
        raise ConfigError("no .rego files here", location=SourceLocation(str(directory)))
    return sources


def _compile(sources: Mapping[str, str], *, directory: Path, engine_factory: EngineFactory) -> None:
    # Tests are compiled too: a test file that does not parse is as broken as a policy.
    engine: PolicyEngine = engine_factory()
    try:
        engine.load(sources)
        if DECISION_PACKAGE not in engine.packages():
            raise ConfigError(
                f"no policy file declares `package {DECISION_PACKAGE}`",
                location=SourceLocation(str(directory)),
            )
    finally:
        engine.close()


def _check(plan: PlanLiteral, runbooks: Mapping[str, RunbookSignature]) -> Iterator[Finding]:
    if plan.runbook is None:
        yield Finding(
            plan.runbook_location,
            "plan's runbook is not a string literal; it cannot be checked",
            Severity.WARNING,
        )
        return
    signature = runbooks.get(plan.runbook)
    if signature is None:
        known = ", ".join(sorted(runbooks)) or "none"
        yield Finding(
            plan.runbook_location,
            f"plan chooses unknown runbook {json.dumps(plan.runbook)} (known: {known})",
        )
        return
    if plan.params is None:
        where = plan.params_location or plan.location
        yield Finding(
            where,
            f"plan's params for runbook {json.dumps(plan.runbook)} are not an object literal; "
            "they cannot be checked",
            Severity.WARNING,
        )
        return
    takes = ", ".join(sorted(signature.params)) or "no params"
    for name, location in plan.params:
        if name not in signature.params:
            yield Finding(
                location,
                f"plan passes param {json.dumps(name)} that runbook "
                f"{json.dumps(plan.runbook)} does not take (it takes: {takes})",
            )
    missing = sorted(signature.required - {name for name, _ in plan.params})
    for name in missing:
        yield Finding(
            plan.params_location or plan.location,
            f"plan omits param {json.dumps(name)}, which runbook {json.dumps(plan.runbook)} "
            "requires",
        )


# --- The scanner: Rego source -> tokens -> bracket groups -> object literals with "runbook".


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "string", "word", or the punctuation itself ("{", ":", ",", "|", ...)
    text: str
    line: int
    column: int

    def value(self) -> str:
        """A string token's value, escapes decoded (Rego strings escape as JSON does)."""
        if self.text.startswith("`"):
            return self.text[1:-1]
        try:
            decoded = json.loads(self.text)
        except ValueError:
            return self.text[1:-1]
        return decoded if isinstance(decoded, str) else self.text[1:-1]


@dataclass(slots=True)
class _Group:
    opener: _Token
    children: list[_Token | _Group] = field(default_factory=list)


_LEXEME = re.compile(
    r"""
      (?P<space>[ \t\r\n]+)
    | (?P<comment>\#[^\n]*)
    | (?P<string>"(?:[^"\\\n]|\\.)*"?)
    | (?P<raw>`[^`]*`?)
    | (?P<word>[A-Za-z0-9_.]+)
    | (?P<punct>:=|==|!=|<=|>=|.)
    """,
    re.VERBOSE | re.DOTALL,
)
_CLOSERS = {"{": "}", "[": "]", "(": ")"}


def _tokens(source: str) -> Iterator[_Token]:
    line, line_start = 1, 0
    for match in _LEXEME.finditer(source):
        kind = match.lastgroup or "punct"
        text = match.group()
        if kind not in {"space", "comment"}:
            token_kind = {"string": "string", "raw": "string", "word": "word"}.get(kind, text)
            yield _Token(token_kind, text, line, match.start() - line_start + 1)
        newlines = text.count("\n")
        if newlines:
            line += newlines
            line_start = match.start() + text.rindex("\n") + 1


def _groups(tokens: Iterator[_Token]) -> list[_Token | _Group]:
    """Nest tokens by brackets; an unmatched closer is ignored, an unclosed group ends at EOF."""
    top: list[_Token | _Group] = []
    stack: list[_Group] = []
    for token in tokens:
        children = stack[-1].children if stack else top
        if token.kind in _CLOSERS:
            group = _Group(token)
            children.append(group)
            stack.append(group)
        elif stack and token.kind == _CLOSERS[stack[-1].opener.kind]:
            stack.pop()
        elif token.kind not in _CLOSERS.values():
            children.append(token)
    return top


def _walk(items: Sequence[_Token | _Group]) -> Iterator[_Group]:
    for item in items:
        if isinstance(item, _Group):
            yield item
            yield from _walk(item.children)


def _entries(group: _Group) -> Iterator[tuple[_Token | None, list[_Token | _Group]]]:
    """A group's comma-separated entries as (key, value); key is None unless `"string":`."""
    entry: list[_Token | _Group] = []
    for item in [*group.children, None]:
        if item is not None and not (isinstance(item, _Token) and item.kind == ","):
            entry.append(item)
            continue
        first = entry[0] if entry else None
        second = entry[1] if len(entry) > 1 else None
        if (
            isinstance(first, _Token)
            and first.kind == "string"
            and isinstance(second, _Token)
            and second.kind == ":"
        ):
            yield first, entry[2:]
        elif entry:
            yield None, entry
        entry = []


def _is_comprehension(group: _Group) -> bool:
    return any(isinstance(item, _Token) and item.kind == "|" for item in group.children)


def _location(source: str, token: _Token) -> SourceLocation:
    return SourceLocation(source, token.line, token.column)


def find_plans(text: str, *, source: str) -> list[PlanLiteral]:
    """Every object literal in `text` with a `"runbook"` key, in source order."""
    plans = []
    for group in _walk(_groups(_tokens(text))):
        if group.opener.kind != "{" or _is_comprehension(group):
            continue
        entries = {key.value(): (key, value) for key, value in _entries(group) if key is not None}
        if "runbook" not in entries:
            continue
        key, value = entries["runbook"]
        runbook = value[0] if len(value) == 1 else None
        literal = isinstance(runbook, _Token) and runbook.kind == "string"
        where = runbook if isinstance(runbook, _Token) else key
        params, params_location = _params(entries.get("params"), source=source)
        plans.append(
            PlanLiteral(
                location=_location(source, group.opener),
                runbook=runbook.value() if literal and isinstance(runbook, _Token) else None,
                runbook_location=_location(source, where),
                params=params,
                params_location=params_location,
            )
        )
    return plans


def _params(
    entry: tuple[_Token, list[_Token | _Group]] | None, *, source: str
) -> tuple[tuple[tuple[str, SourceLocation], ...] | None, SourceLocation | None]:
    if entry is None:
        return (), None
    key, value = entry
    literal = value[0] if len(value) == 1 else None
    if not isinstance(literal, _Group) or literal.opener.kind != "{":
        return None, _location(source, key)
    keys = [name for name, _ in _entries(literal)]
    if _is_comprehension(literal) or None in keys:
        return None, _location(source, key)
    names = tuple((name.value(), _location(source, name)) for name in keys if name is not None)
    return names, _location(source, key)


def _package(text: str) -> str | None:
    """The package a file declares (dotted identifiers only, which is what plans live in)."""
    tokens = _tokens(text)
    for token in tokens:
        if token.kind == "word" and token.text == "package":
            name = next(tokens, None)
            return name.text if name is not None and name.kind == "word" else None
    return None
