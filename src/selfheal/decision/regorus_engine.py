"""The PolicyEngine backed by regorus (the `gordon-to-regorus` build of Microsoft's engine).

This is the only module that imports `regorus`; every exception it raises is translated
here. Facts found by experiment with version 0.13 that shape the code:

- Every error is a `RuntimeError` whose text reads `--> file:line:col`, a source excerpt,
  `error: message`, then (with RUST_BACKTRACE set) a stack backtrace. We keep the location
  and the message line.
- Parse errors surface in `add_policy`, but semantic ones (unsafe variables) only when the
  engine first evaluates something, so `load` evaluates `true` once to surface them while
  the old modules are still active. Unknown functions, wrong arity and conflicting rule
  outputs surface only when the rule in question is evaluated: they are PolicyErrors.
- `eval_query` returns Rego sets as Python sets, which fails outright for a set of objects
  (`plans contains {...}`) because dicts are unhashable; `eval_query_as_json` renders sets
  as arrays in Rego's sort order, so we use it. Undefined is a missing `result` key.
- The Python `Engine` is a pyo3 "unsendable" class: using it from any thread but its
  creator's panics, and dropping it on another thread leaks it with an unraisable error.
  Every call also holds the GIL, so separate engines per thread would not run in parallel
  anyway. Hence one owner thread per RegorusEngine runs every regorus call, callers wait on
  a Future, and engines are created, cloned and dropped only on that thread.
- `clone()` is cheap (a few microseconds: modules are shared), so each evaluation runs on a
  clone: `input` and `data` of one call never leak into the next, and `input=None` really
  leaves `input` undefined.
"""

from __future__ import annotations

import json
import queue
import re
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, cast

import regorus  # type: ignore[import-untyped]  # the wheel ships no type information

from selfheal.decision.engine import PolicyError, RuleRef
from selfheal.domain.errors import ConfigError, SourceLocation

T = TypeVar("T")

__all__ = ["RegorusEngine"]


class _Regorus(Protocol):
    """The part of `regorus.Engine` we use, typed for mypy."""

    def set_rego_v0(self, enable: bool) -> None: ...
    def add_policy(self, path: str, rego: str) -> str: ...
    def add_data_json(self, data: str) -> None: ...
    def set_input_json(self, input: str) -> None: ...  # noqa: A002 - regorus's signature
    def eval_query_as_json(self, query: str) -> str: ...
    def get_ast_as_json(self) -> str: ...
    def clone(self) -> _Regorus: ...


_LOCATION = re.compile(r"^\s*-->\s*(?P<source>.+):(?P<line>\d+):(?P<column>\d+)\s*$", re.MULTILINE)
_MESSAGE = re.compile(r"^error:\s*(?P<message>.+)$", re.MULTILINE)
# The pseudo-file regorus names a query's own text in error messages.
_QUERY_SOURCE = "<query.rego>"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _parse_error(exc: BaseException) -> tuple[str, SourceLocation | None]:
    """Split a regorus error into its message and, when it names one, its location."""
    text = str(exc).split("Stack backtrace:", 1)[0].split("Caused by:", 1)[0]
    found = _LOCATION.search(text)
    location = None
    if found:
        location = SourceLocation(found["source"], int(found["line"]), int(found["column"]))
    message = _MESSAGE.search(text)
    if message:
        return message["message"].strip(), location
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__), location


def _is_panic(exc: BaseException) -> bool:
    # pyo3 turns a Rust panic into pyo3_runtime.PanicException, a BaseException subclass
    # that no importable module exposes, so it is recognised by name.
    return type(exc).__name__ == "PanicException"


@contextmanager
def _compiling(source: str | None) -> Iterator[None]:
    """Turn a regorus error raised while loading into a ConfigError naming its place."""
    try:
        yield
    except BaseException as exc:
        if not (isinstance(exc, RuntimeError) or _is_panic(exc)):
            raise
        message, location = _parse_error(exc)
        if location is None and source is not None:
            # Size-limit errors name the file in their text; the location already does.
            message = message.removeprefix(f"{source} ")
            location = SourceLocation(source)
        raise ConfigError(message, location=location) from exc


@contextmanager
def _evaluating(query: str) -> Iterator[None]:
    """Turn a regorus error raised while evaluating into a PolicyError."""
    try:
        yield
    except BaseException as exc:
        if not (isinstance(exc, RuntimeError) or _is_panic(exc)):
            raise
        message, location = _parse_error(exc)
        if _is_panic(exc):
            message = f"the Rego engine crashed evaluating {query!r}: {message}"
        if location is not None and location.source == _QUERY_SOURCE:
            location, message = None, f"in query {query!r}: {message}"
        raise PolicyError(message, location=location) from exc


# --- Introspection, read from regorus's AST. Its JSON is the library's internal shape, so
# --- anything not understood is skipped rather than trusted.


def _ref_segments(node: Any, *, keep_brackets: bool) -> list[str]:
    """The names in a reference such as `a.b["c"]`; for rule heads, `[key]` is dropped."""
    if not isinstance(node, dict):
        return []
    if "Var" in node:
        return [str(node["Var"].get("value", ""))]
    if "RefDot" in node:
        dot = node["RefDot"]
        name = dot.get("field", [None, ""])[1]
        return [*_ref_segments(dot.get("refr"), keep_brackets=keep_brackets), str(name)]
    if "RefBrack" in node:
        brack = node["RefBrack"]
        head = _ref_segments(brack.get("refr"), keep_brackets=keep_brackets)
        index = brack.get("index", {})
        if keep_brackets and isinstance(index, dict) and "String" in index:
            return [*head, str(index["String"].get("value", ""))]
        return head
    return []


def _render_path(segments: Sequence[str]) -> str:
    """Write segments as Rego does: dots for identifiers, `["..."]` for anything else."""
    text = ""
    for segment in segments:
        if _IDENTIFIER.match(segment):
            text += f".{segment}" if text else segment
        else:
            text += f"[{json.dumps(segment)}]"
    return text


def _rule_head(rule: Any) -> tuple[str, int, int] | None:
    """A rule's name and position, or None for functions and anything unrecognised."""
    if not isinstance(rule, dict) or len(rule) != 1:
        return None
    kind, body = next(iter(rule.items()))
    if not isinstance(body, dict):
        return None
    if kind == "Default" and not body.get("args"):
        refr = body.get("refr")
    elif kind == "Spec":
        head = body.get("head")
        if not isinstance(head, dict) or len(head) != 1 or "Func" in head:
            return None
        inner = next(iter(head.values()))
        refr = inner.get("refr") if isinstance(inner, dict) else None
    else:
        return None
    segments = _ref_segments(refr, keep_brackets=False)
    if not segments:
        return None
    span = body.get("span", {})
    return ".".join(segments), int(span.get("line", 0)), int(span.get("col", 0))


@dataclass(frozen=True, slots=True)
class _Index:
    """Packages and rules of the loaded modules, computed once per load."""

    rules: Mapping[str, tuple[RuleRef, ...]] = field(default_factory=dict)

    @classmethod
    def from_ast(cls, ast_json: str) -> _Index:
        found: dict[str, dict[str, RuleRef]] = {}
        modules = json.loads(ast_json)
        for module in modules if isinstance(modules, list) else []:
            source = str(module.get("source", {}).get("file", ""))
            tree = module.get("ast", {})
            package_ref = tree.get("package", {}).get("refr")
            package = _render_path(_ref_segments(package_ref, keep_brackets=True))
            if not package:
                continue
            rules = found.setdefault(package, {})
            for rule in tree.get("rules", []):
                head = _rule_head(rule)
                if head is not None and head[0] not in rules:
                    name, line, column = head
                    rules[name] = RuleRef(package, name, source, line, column)
        return cls({package: tuple(rules.values()) for package, rules in found.items()})


class _Owned:
    """What only the owner thread touches: the loaded regorus engine and its index."""

    def __init__(self) -> None:
        self.engine: _Regorus = _new_engine()
        self.index = _Index()


def _new_engine() -> _Regorus:
    engine = cast("_Regorus", regorus.Engine())
    # v1 is regorus's default today; say so rather than depend on the default.
    engine.set_rego_v0(False)
    return engine


_Request = tuple[Callable[[_Owned], Any], "Future[Any]"]


def _serve(requests: queue.SimpleQueue[_Request | None]) -> None:
    """The owner thread: run requests until the None sentinel, then drop the engine here."""
    owned = _Owned()
    while (request := requests.get()) is not None:
        work, future = request
        try:
            result = work(owned)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, who re-raises it
            future.set_exception(_detached(exc))
        else:
            future.set_result(result)


def _detached(exc: BaseException) -> BaseException:
    """Drop the tracebacks along an exception's chain before it leaves the owner thread.

    The frames in them hold regorus engines; if the caller kept the exception, an engine
    could be freed on the caller's thread, which regorus does not allow.
    """
    pending: list[BaseException] = [exc]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        current.__traceback__ = None
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return exc


def _to_json(value: Mapping[str, Any], *, what: str) -> str:
    try:
        return json.dumps(value, allow_nan=False, default=_jsonable)
    except (TypeError, ValueError) as exc:
        raise PolicyError(f"the policy {what} is not a JSON document: {exc}") from exc


def _jsonable(value: object) -> object:
    # The domain hands out read-only Mappings and tuples; JSON knows only dicts and lists.
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serializable")


def _single_value(result_json: str, *, query: str) -> Any:
    """The value of the query's last expression in its only solution; None if undefined."""
    solutions = json.loads(result_json).get("result") or []
    if not solutions:
        return None
    if len(solutions) > 1:
        raise PolicyError(
            f"query {query!r} has {len(solutions)} solutions; ask for one value "
            "(a reference, or a comprehension that collects them)"
        )
    return solutions[0]["expressions"][-1]["value"]


class RegorusEngine:
    """A PolicyEngine on regorus; thread-safe, with its own owner thread.

    Call `close()` when done, or let garbage collection stop the thread.
    """

    def __init__(self) -> None:
        self._requests: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        # Only the queue goes to the thread: if it held `self`, the engine could never be
        # garbage collected and the finalizer below would never stop the thread.
        threading.Thread(
            target=_serve, args=(self._requests,), name="regorus-engine", daemon=True
        ).start()
        self._stop = weakref.finalize(self, self._requests.put, None)
        # Guards "closed?" and "enqueue" together, so no request lands behind the sentinel.
        self._lock = threading.Lock()

    def _call(self, work: Callable[[_Owned], T]) -> T:
        future: Future[T] = Future()
        with self._lock:
            if not self._stop.alive:
                raise PolicyError("the policy engine is closed")
            self._requests.put((work, future))
        return future.result()

    def close(self) -> None:
        with self._lock:
            self._stop()

    def load(self, modules: Mapping[str, str]) -> None:
        sources = dict(modules)

        def work(owned: _Owned) -> None:
            engine = _new_engine()
            for path, source in sources.items():
                with _compiling(path):
                    engine.add_policy(path, source)
            # Evaluating anything runs regorus's analysis of every module (unsafe variables
            # and the like), so those errors surface now, while the old modules are active.
            with _compiling(None):
                engine.eval_query_as_json("true")
                index = _Index.from_ast(engine.get_ast_as_json())
            owned.engine, owned.index = engine, index

        self._call(work)

    def evaluate(
        self,
        query: str,
        *,
        input: Mapping[str, Any] | None,  # noqa: A002 - Rego's own name for the document
        data: Mapping[str, Any] | None = None,
    ) -> Any:
        # Encoding and decoding JSON happen on the caller's thread, outside the one lane
        # every call shares.
        input_json = None if input is None else _to_json(input, what="input")
        data_json = None if data is None else _to_json(data, what="data")

        def work(owned: _Owned) -> str:
            with _evaluating(query):
                engine = owned.engine.clone()
                if input_json is not None:
                    engine.set_input_json(input_json)
                if data_json is not None:
                    engine.add_data_json(data_json)
                return engine.eval_query_as_json(query)

        return _single_value(self._call(work), query=query)

    def evaluate_many(
        self, query: str, *, inputs: Sequence[Mapping[str, Any]]
    ) -> list[Any | PolicyError]:
        encoded: list[str | PolicyError] = []
        for item in inputs:
            try:
                encoded.append(_to_json(item, what="input"))
            except PolicyError as exc:
                encoded.append(exc)

        def work(owned: _Owned) -> list[str | PolicyError]:
            answers: list[str | PolicyError] = []
            for input_json in encoded:
                if isinstance(input_json, PolicyError):
                    answers.append(input_json)
                    continue
                try:
                    with _evaluating(query):
                        engine = owned.engine.clone()
                        engine.set_input_json(input_json)
                        answers.append(engine.eval_query_as_json(query))
                except PolicyError as exc:
                    answers.append(exc)
            return answers

        results: list[Any | PolicyError] = []
        for answer in self._call(work):
            if isinstance(answer, PolicyError):
                results.append(answer)
                continue
            try:
                results.append(_single_value(answer, query=query))
            except PolicyError as exc:
                results.append(exc)
        return results

    def packages(self) -> list[str]:
        return sorted(self._call(lambda owned: list(owned.index.rules)))

    def rules(self, package: str) -> list[RuleRef]:
        return self._call(lambda owned: list(owned.index.rules.get(package, ())))
