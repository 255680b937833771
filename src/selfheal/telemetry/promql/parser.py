"""A hand-written PromQL parser: recursive descent with precedence climbing.

Binary operators bind as in Prometheus, loosest first: `or`; `and` `unless`; comparisons;
`+ -`; `* / % atan2`; `^`, which alone is right-associative. Unary minus binds like `*`, so
`-2 ^ 2` is `-(2 ^ 2)` and `-a * b` is `(-a) * b`; a minus in front of a number literal is
folded into it. The postfix modifiers (`[range]`, `[range:step]`, `offset`, `@`) bind
tighter than any operator.

Types are checked as the tree is built, so every error points at the token that caused it
and says what was expected there; Prometheus' wording is kept where users will search for it
(`vector selector must contain at least one non-empty matcher`).
"""

from __future__ import annotations

import math
from dataclasses import replace

from selfheal.telemetry.promql import ast
from selfheal.telemetry.promql.ast import PromQLError, ValueType, value_type
from selfheal.telemetry.promql.lexer import Kind, Token, duration_seconds, number_value, tokenize
from selfheal.telemetry.tsdb import METRIC_NAME, Matcher, MatchOp

_MATCH_OPS = {
    "=": MatchOp.EQUAL,
    "!=": MatchOp.NOT_EQUAL,
    "=~": MatchOp.REGEX,
    "!~": MatchOp.NOT_REGEX,
}
_BINARY_KEYWORDS = frozenset({"and", "or", "unless", "atan2"})
# Go's int64 range bounds the milliseconds an @ timestamp may have.
_MAX_AT_SECONDS = 2**63 / 1000


def parse(text: str) -> ast.Expr:
    """Parse a PromQL expression; PromQLError with position, line and column if invalid."""
    parser = _Parser(text)
    expr = parser.expression(0)
    token = parser.peek()
    if token.kind is not Kind.EOF:
        raise parser.error(
            f"unexpected {token.describe()}; expected an operator or the end of the expression",
            token,
        )
    return expr


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.index = 0
        # Parentheses are not kept in the tree, but they matter in three places: a range or
        # modifier may not follow them, and "-(1)" is not folded into the literal -1.
        self.parenthesized: set[int] = set()

    # -- token helpers --------------------------------------------------------------------

    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.index + ahead, len(self.tokens) - 1)]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        if token.kind is not Kind.EOF:
            self.index += 1
        return token

    def error(self, message: str, token: Token | int) -> PromQLError:
        position = token if isinstance(token, int) else token.position
        return PromQLError(message, expression=self.text, position=position)

    def unexpected(self, token: Token, *, context: str, expected: str) -> PromQLError:
        return self.error(f"unexpected {token.describe()} {context}, expected {expected}", token)

    def at_punct(self, char: str) -> bool:
        token = self.peek()
        return token.kind is Kind.PUNCTUATION and token.value == char

    def at_keyword(self, *words: str) -> bool:
        token = self.peek()
        return token.kind is Kind.KEYWORD and token.value in words

    def expect_punct(self, char: str, context: str) -> Token:
        if not self.at_punct(char):
            raise self.unexpected(self.peek(), context=context, expected=f'"{char}"')
        return self.advance()

    # -- expressions ----------------------------------------------------------------------

    def expression(self, min_precedence: int) -> ast.Expr:
        left = self.unary()
        while True:
            token = self.peek()
            op = _binary_operator(token)
            if op is None or ast.PRECEDENCE[op] < min_precedence:
                return left
            self.advance()
            return_bool, matching = self.binary_modifiers(op)
            precedence = ast.PRECEDENCE[op]
            right_min = precedence if op in ast.RIGHT_ASSOCIATIVE else precedence + 1
            right = self.expression(right_min)
            left = self.binary(
                op, left=left, right=right, token=token, return_bool=return_bool, matching=matching
            )

    def unary(self) -> ast.Expr:
        token = self.peek()
        if token.kind is not Kind.OPERATOR or token.value not in {"+", "-"}:
            return self.postfix(self.primary())
        self.advance()
        operand = self.expression(ast.PRECEDENCE["^"])
        if isinstance(operand, ast.NumberLiteral) and id(operand) not in self.parenthesized:
            value = -operand.value if token.value == "-" else operand.value
            return ast.NumberLiteral(value, position=token.position)
        if value_type(operand) not in {ValueType.SCALAR, ValueType.VECTOR}:
            raise self.error(
                "unary expression only allowed on expressions of type scalar or instant vector",
                token,
            )
        return ast.UnaryExpr(token.value, operand, position=token.position)

    def primary(self) -> ast.Expr:  # noqa: PLR0911 -- one return per kind of atom
        token = self.peek()
        if token.kind is Kind.NUMBER:
            self.advance()
            return ast.NumberLiteral(number_value(token, self.text), position=token.position)
        if token.kind is Kind.STRING:
            self.advance()
            return ast.StringLiteral(token.value, position=token.position)
        if token.kind is Kind.PUNCTUATION and token.value == "(":
            self.advance()
            inner = self.expression(0)
            self.expect_punct(")", "in parenthesized expression")
            self.parenthesized.add(id(inner))
            return inner
        if token.kind is Kind.PUNCTUATION and token.value == "{":
            return self.selector("", token)
        if token.kind is Kind.IDENTIFIER and self.peek(1).value == "(":
            return self.call()
        if token.kind in {Kind.IDENTIFIER, Kind.METRIC_IDENTIFIER}:
            self.advance()
            return self.selector(token.value, token)
        if token.kind is Kind.KEYWORD and token.value in ast.AGGREGATORS:
            return self.aggregation()
        if token.kind is Kind.DURATION:
            raise self.error(
                f'unexpected duration "{token.value}": a duration only goes in a range '
                "[5m], a subquery [5m:1m] or after offset",
                token,
            )
        raise self.error(f"unexpected {token.describe()}, expected an expression", token)

    # -- postfix modifiers ----------------------------------------------------------------

    def postfix(self, base: ast.Expr) -> ast.Expr:
        while True:
            token = self.peek()
            if token.kind is Kind.PUNCTUATION and token.value == "[":
                base = self.range_or_subquery(base, token)
            elif token.kind is Kind.KEYWORD and token.value == "offset":
                base = self.offset(base, token)
            elif token.kind is Kind.OPERATOR and token.value == "@":
                base = self.at(base, token)
            else:
                return base

    def duration(self, context: str) -> float:
        token = self.peek()
        if token.kind is not Kind.DURATION:
            raise self.unexpected(token, context=context, expected='a duration like "5m"')
        self.advance()
        return duration_seconds(token, self.text)

    def range_or_subquery(self, base: ast.Expr, bracket: Token) -> ast.Expr:
        self.advance()
        span = self.duration("in range or subquery")
        if span <= 0:
            raise self.error("a range must be greater than 0", bracket)
        if self.at_punct(":"):
            self.advance()
            step = 0.0
            if not self.at_punct("]"):
                step = self.duration("in subquery step")
                if step <= 0:
                    raise self.error("a subquery step must be greater than 0", bracket)
            self.expect_punct("]", "in subquery")
            kind = value_type(base)
            if kind is not ValueType.VECTOR:
                raise self.error(f"subquery is only allowed on instant vector, got {kind}", bracket)
            return ast.SubqueryExpr(base, span, step, position=bracket.position)
        self.expect_punct("]", "in range selector")
        if not isinstance(base, ast.VectorSelector) or id(base) in self.parenthesized:
            raise self.error("ranges only allowed for vector selectors", bracket)
        if base.offset:
            raise self.error("no offset modifiers allowed before range", bracket)
        if base.at is not None or base.at_anchor is not None:
            raise self.error("no @ modifiers allowed before range", bracket)
        return ast.MatrixSelector(base, span, position=base.position)

    def offset(self, base: ast.Expr, keyword: Token) -> ast.Expr:
        self.advance()
        sign = 1.0
        if self.peek().kind is Kind.OPERATOR and self.peek().value == "-":
            self.advance()
            sign = -1.0
        amount = sign * self.duration("after offset")
        target = self._modifiable(base, keyword, what="offset modifier")
        if target.offset:
            raise self.error("offset may not be set multiple times", keyword)
        return _replace_modifier(base, offset=amount)

    def at(self, base: ast.Expr, symbol: Token) -> ast.Expr:
        self.advance()
        token = self.peek()
        anchor: ast.AtAnchor | None = None
        timestamp: float | None = None
        if token.kind is Kind.IDENTIFIER and token.value in {"start", "end"}:
            self.advance()
            self.expect_punct("(", f"after {token.value}")
            self.expect_punct(")", f"after {token.value}(")
            anchor = ast.AtAnchor(token.value)
        else:
            sign = 1.0
            if token.kind is Kind.OPERATOR and token.value in {"+", "-"}:
                self.advance()
                sign = -1.0 if token.value == "-" else 1.0
                token = self.peek()
            if token.kind is not Kind.NUMBER:
                raise self.error(
                    f"unexpected {token.describe()} after @: the @ modifier takes a Unix "
                    "timestamp or start() or end(); other expressions are not supported",
                    token,
                )
            self.advance()
            seconds = sign * number_value(token, self.text)
            if not math.isfinite(seconds) or abs(seconds) >= _MAX_AT_SECONDS:
                raise self.error(f"timestamp out of bounds for @ modifier: {seconds}", token)
            timestamp = round(seconds * 1000) / 1000
        target = self._modifiable(base, symbol, what="@ modifier")
        if target.at is not None or target.at_anchor is not None:
            raise self.error("@ <timestamp> may not be set multiple times", symbol)
        return _replace_modifier(base, at=timestamp, at_anchor=anchor)

    def _modifiable(
        self, base: ast.Expr, token: Token, *, what: str
    ) -> ast.VectorSelector | ast.SubqueryExpr:
        if id(base) not in self.parenthesized:
            if isinstance(base, ast.MatrixSelector):
                return base.selector
            if isinstance(base, ast.VectorSelector | ast.SubqueryExpr):
                return base
        raise self.error(
            f"{what} must be preceded by an instant vector selector or range vector selector "
            "or a subquery",
            token,
        )

    # -- selectors, calls, aggregations ---------------------------------------------------

    def selector(self, name: str, start: Token) -> ast.VectorSelector:
        matchers: list[Matcher] = []
        if self.at_punct("{"):
            self.advance()
            while not self.at_punct("}"):
                matchers.append(self.matcher())
                if not self.at_punct(","):
                    break
                self.advance()
            self.expect_punct("}", "in label matching")
        if name and any(m.name == METRIC_NAME for m in matchers):
            other = next(m.value for m in matchers if m.name == METRIC_NAME)
            raise self.error(f'metric name must not be set twice: "{name}" or "{other}"', start)
        if not name and all(m.matches("") for m in matchers):
            raise self.error("vector selector must contain at least one non-empty matcher", start)
        return ast.VectorSelector(name, tuple(matchers), position=start.position)

    def matcher(self) -> Matcher:
        name = self.label_name("in label matching")
        token = self.peek()
        if token.kind not in {Kind.OPERATOR, Kind.PUNCTUATION} or token.value not in _MATCH_OPS:
            raise self.unexpected(
                token, context="in label matching", expected="label matching operator"
            )
        self.advance()
        value = self.peek()
        if value.kind is not Kind.STRING:
            raise self.unexpected(value, context="in label matching", expected="string")
        self.advance()
        try:
            return Matcher(name, _MATCH_OPS[token.value], value.value)
        except ValueError as exc:
            raise self.error(str(exc), value) from exc

    def label_name(self, context: str) -> str:
        token = self.peek()
        # Keywords are fine as label names (`by (on)`, `{offset="x"}`), as are the words
        # Inf and NaN, which lex as numbers.
        is_word = token.kind is Kind.NUMBER and token.value.isalpha()
        if token.kind in {Kind.IDENTIFIER, Kind.KEYWORD} or is_word:
            self.advance()
            return token.text
        raise self.unexpected(token, context=context, expected="label")

    def label_list(self, context: str) -> tuple[str, ...]:
        self.expect_punct("(", context)
        names: list[str] = []
        while not self.at_punct(")"):
            names.append(self.label_name(context))
            if not self.at_punct(","):
                break
            self.advance()
        self.expect_punct(")", context)
        return tuple(names)

    def call(self) -> ast.Call:
        token = self.advance()
        name = token.value
        signature = ast.FUNCTIONS.get(name)
        if signature is None:
            raise self.error(_unknown_function(name), token)
        self.advance()  # "("
        args: list[ast.Expr] = []
        while not self.at_punct(")"):
            args.append(self.expression(0))
            if not self.at_punct(","):
                break
            self.advance()
        self.expect_punct(")", f"in call to {name}()")
        self._check_arguments(name, signature=signature, args=args, token=token)
        return ast.Call(name, tuple(args), position=token.position)

    def _check_arguments(
        self, name: str, *, signature: ast.FunctionSignature, args: list[ast.Expr], token: Token
    ) -> None:
        least = len(signature.args) - signature.optional
        most = None if signature.variadic else len(signature.args)
        if len(args) < least or (most is not None and len(args) > most):
            if least == most:
                wanted = f"{least}"
            elif most is None:
                wanted = f"at least {least}"
            else:
                wanted = f"{least} to {most}"
            raise self.error(
                f'expected {wanted} argument(s) in call to "{name}", got {len(args)}', token
            )
        for index, arg in enumerate(args):
            wanted_type = signature.args[min(index, len(signature.args) - 1)]
            got = value_type(arg)
            if got is not wanted_type:
                raise self.error(
                    f'expected type {wanted_type} in call to function "{name}", got {got}',
                    _position_of(arg, token),
                )

    def aggregation(self) -> ast.AggregateExpr:
        token = self.advance()
        op = token.value
        grouping: tuple[str, ...] = ()
        without = False
        clause_first = self.at_keyword("by", "without")
        if clause_first:
            without = self.advance().value == "without"
            grouping = self.label_list("in grouping opts")
        self.expect_punct("(", f"in aggregation {op}")
        args: list[ast.Expr] = []
        while not self.at_punct(")"):
            args.append(self.expression(0))
            if not self.at_punct(","):
                break
            self.advance()
        self.expect_punct(")", f"in aggregation {op}")
        if not clause_first and self.at_keyword("by", "without"):
            without = self.advance().value == "without"
            grouping = self.label_list("in grouping opts")
        wanted = 2 if op in ast.AGGREGATOR_PARAMS else 1
        if len(args) != wanted:
            raise self.error(
                "wrong number of arguments for aggregate expression provided, "
                f"expected {wanted}, got {len(args)}",
                token,
            )
        expr = args[-1]
        if value_type(expr) is not ValueType.VECTOR:
            raise self.error(
                f"expected type instant vector in aggregation expression, got {value_type(expr)}",
                _position_of(expr, token),
            )
        param = args[0] if wanted == 2 else None
        if param is not None and value_type(param) is not ast.AGGREGATOR_PARAMS[op]:
            raise self.error(
                f"expected type {ast.AGGREGATOR_PARAMS[op]} in aggregation parameter, "
                f"got {value_type(param)}",
                _position_of(param, token),
            )
        return ast.AggregateExpr(
            op, expr, param, grouping, without=without, position=token.position
        )

    # -- binary operators -----------------------------------------------------------------

    def binary_modifiers(self, op: str) -> tuple[bool, ast.VectorMatching | None]:
        return_bool = False
        if self.at_keyword("bool"):
            token = self.advance()
            if op not in ast.COMPARISONS:
                raise self.error("bool modifier can only be used on comparison operators", token)
            return_bool = True
        on = False
        labels: tuple[str, ...] = ()
        given = False
        if self.at_keyword("on", "ignoring"):
            on = self.advance().value == "on"
            labels = self.label_list("in grouping opts")
            given = True
        card = ast.Cardinality.ONE_TO_ONE
        include: tuple[str, ...] = ()
        if self.at_keyword("group_left", "group_right"):
            token = self.advance()
            if op in ast.SET_OPERATORS:
                raise self.error(f'no grouping allowed for "{op}" operation', token)
            card = (
                ast.Cardinality.MANY_TO_ONE
                if token.value == "group_left"
                else ast.Cardinality.ONE_TO_MANY
            )
            if self.at_punct("("):
                include = self.label_list("in grouping opts")
            given = True
            for name in include:
                if name in labels and on:
                    raise self.error(
                        f'label "{name}" must not occur in ON and GROUP clause at once', token
                    )
        if not given:
            return return_bool, None
        return return_bool, ast.VectorMatching(card, on=on, labels=labels, include=include)

    def binary(
        self,
        op: str,
        *,
        left: ast.Expr,
        right: ast.Expr,
        token: Token,
        return_bool: bool,
        matching: ast.VectorMatching | None,
    ) -> ast.BinaryExpr:
        lt, rt = value_type(left), value_type(right)
        allowed = {ValueType.SCALAR, ValueType.VECTOR}
        if lt not in allowed or rt not in allowed:
            raise self.error(
                "binary expression must contain only scalar and instant vector types", token
            )
        if op in ast.SET_OPERATORS and ValueType.SCALAR in {lt, rt}:
            raise self.error(f'set operator "{op}" not allowed in binary scalar expression', token)
        if op in ast.COMPARISONS and not return_bool and lt is rt is ValueType.SCALAR:
            raise self.error("comparisons between scalars must use BOOL modifier", token)
        if ValueType.SCALAR in {lt, rt}:
            if matching is not None and (
                matching.labels or matching.card is not ast.Cardinality.ONE_TO_ONE
            ):
                raise self.error("vector matching only allowed between instant vectors", token)
            matching = None
        else:
            matching = matching or ast.VectorMatching()
            if op in ast.SET_OPERATORS:
                matching = ast.VectorMatching(
                    ast.Cardinality.MANY_TO_MANY, on=matching.on, labels=matching.labels
                )
        return ast.BinaryExpr(
            op, left, right, matching, return_bool=return_bool, position=token.position
        )


def _binary_operator(token: Token) -> str | None:
    if token.kind is Kind.OPERATOR and token.value in ast.PRECEDENCE:
        return token.value
    if token.kind is Kind.KEYWORD and token.value in _BINARY_KEYWORDS:
        return token.value
    return None


def _position_of(expr: ast.Expr, fallback: Token) -> int:
    return expr.position or fallback.position


def _unknown_function(name: str) -> str:
    if name in ast.NATIVE_HISTOGRAM_FUNCTIONS:
        return (
            f'function "{name}" works on native histograms, which selfheal\'s PromQL engine '
            "does not support"
        )
    if name in ast.UNSUPPORTED_FUNCTIONS:
        return f'function "{name}" is not supported by selfheal\'s PromQL engine'
    return f'unknown function with name "{name}"'


def _replace_modifier(base: ast.Expr, **changes: object) -> ast.Expr:
    """`base` with an offset or @ set on the node that carries it."""
    if isinstance(base, ast.MatrixSelector):
        return replace(base, selector=replace(base.selector, **changes))  # type: ignore[arg-type]
    return replace(base, **changes)  # type: ignore[arg-type]
