"""PromQL's functions, computed as Prometheus 2.42 computes them, digit for digit.

Results are compared against a real Prometheus, so the arithmetic follows its algorithms
and its order of floating-point operations: `rate`/`increase`/`delta` extrapolate to the
range boundaries (`extrapolated_rate`), sums over time use Neumaier-compensated (Kahan)
summation, `deriv`/`predict_linear` use a compensated least-squares fit, and
`histogram_quantile` interpolates linearly inside the bucket that holds the rank.

Where Python's math raises and Go's returns an infinity or NaN, the `go_*` helpers of
`operators` give Go's answer.

The vector-level functions that manage labels (`label_replace`, `label_join`,
`histogram_quantile`, `clamp`) are here too; the evaluator maps the rest over series.

Timestamps here are integer milliseconds, as in Prometheus; values are floats.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from decimal import Decimal

from selfheal.telemetry import label_regex
from selfheal.telemetry.promql.ast import PromQLError
from selfheal.telemetry.promql.operators import (
    go_ceil,
    go_div,
    go_exp,
    go_floor,
    go_log,
    go_log2,
    go_log10,
    go_max,
    go_min,
    go_sqrt,
)
from selfheal.telemetry.tsdb import METRIC_NAME, Labels, is_valid_label_name

# Prometheus extrapolates a rate to a range boundary only if the first or last sample is
# within 110% of the average sample spacing from it.
_EXTRAPOLATION_SLACK = 1.1


def kahan_inc(increment: float, state: tuple[float, float]) -> tuple[float, float]:
    """One step of Neumaier's compensated summation (Prometheus' kahanSumInc).

    `state` is (running total, compensation); the new state is returned.
    """
    total, compensation = state
    new_total = total + increment
    if abs(total) >= abs(increment):
        compensation += (total - new_total) + increment
    else:
        compensation += (increment - new_total) + total
    return new_total, compensation


def seconds(millis: int) -> float:
    """Go's Duration.Seconds(): whole seconds plus the remainder, added as floats."""
    whole, rest = divmod(abs(millis), 1000)
    value = float(whole) + (rest * 1_000_000) / 1e9
    return -value if millis < 0 else value


# -- range-vector functions: one series' samples in, one value (or nothing) out --------------

Times = Sequence[int]
Values = Sequence[float]


def extrapolated_rate(
    times: Times,
    values: Values,
    *,
    range_start: int,
    range_end: int,
    is_counter: bool,
    is_rate: bool,
) -> float | None:
    """rate(), increase() and delta(): the change over the range, extrapolated.

    The change between the first and last sample (plus every drop, for counters) is scaled
    from the sampled interval to the range, but only up to a boundary the samples come
    close to: if the series seems to start or end inside the range, the extrapolation goes
    half an average sample interval beyond the data instead. A counter is never
    extrapolated below zero.
    """
    count = len(values)
    if count < 2:
        return None
    result = values[-1] - values[0]
    if is_counter:
        previous = values[0]
        for value in values[1:]:
            if value < previous:
                result += previous
            previous = value
    to_start = (times[0] - range_start) / 1000
    to_end = (range_end - times[-1]) / 1000
    sampled = (times[-1] - times[0]) / 1000
    average = sampled / (count - 1)
    if is_counter and result > 0 and values[0] >= 0:
        to_zero = sampled * (values[0] / result)
        to_start = min(to_start, to_zero)
    threshold = average * _EXTRAPOLATION_SLACK
    extended = sampled
    extended += to_start if to_start < threshold else average / 2
    extended += to_end if to_end < threshold else average / 2
    # One factor, divided by the range before it scales the change: Prometheus' order of
    # operations, which can differ from (change * factor) / range in the last digit.
    factor = extended / sampled
    if is_rate:
        factor /= seconds(range_end - range_start)
    return result * factor


def instant_change(times: Times, values: Values, *, is_rate: bool) -> float | None:
    """irate() and idelta(): from the last two samples only."""
    if len(values) < 2:
        return None
    last, previous = values[-1], values[-2]
    result = last if is_rate and last < previous else last - previous
    interval = times[-1] - times[-2]
    if interval == 0:
        return None
    if is_rate:
        result /= interval / 1000
    return result


def linear_regression(times: Times, values: Values, *, intercept_time: int) -> tuple[float, float]:
    """Least-squares slope (per second) and intercept at `intercept_time`."""
    n = 0.0
    sum_x = c_x = sum_y = c_y = sum_xy = c_xy = sum_x2 = c_x2 = 0.0
    first = values[0]
    constant = True
    for index, (time, value) in enumerate(zip(times, values, strict=True)):
        if constant and index > 0 and value != first:
            constant = False
        n += 1.0
        x = (time - intercept_time) / 1e3
        sum_x, c_x = kahan_inc(x, (sum_x, c_x))
        sum_y, c_y = kahan_inc(value, (sum_y, c_y))
        sum_xy, c_xy = kahan_inc(x * value, (sum_xy, c_xy))
        sum_x2, c_x2 = kahan_inc(x * x, (sum_x2, c_x2))
    if constant:
        # A flat series has slope exactly 0, not the rounding noise of the general formula.
        return (math.nan, math.nan) if math.isinf(first) else (0.0, first)
    sum_x += c_x
    sum_y += c_y
    sum_xy += c_xy
    sum_x2 += c_x2
    cov_xy = sum_xy - sum_x * sum_y / n
    var_x = sum_x2 - sum_x * sum_x / n
    slope = go_div(cov_xy, var_x)
    intercept = sum_y / n - slope * sum_x / n
    return slope, intercept


def avg_over_time(values: Values) -> float:
    # An incremental mean, so that summing large values cannot overflow.
    mean = compensation = 0.0
    count = 0.0
    for value in values:
        count += 1
        if math.isinf(mean):
            if math.isinf(value) and (mean > 0) == (value > 0):
                continue  # same-signed infinities: the mean already is that infinity
            if not math.isinf(value) and not math.isnan(value):
                continue  # a finite value cannot move an infinite mean
        mean, compensation = kahan_inc(value / count - mean / count, (mean, compensation))
    return mean if math.isinf(mean) else mean + compensation


def sum_over_time(values: Values) -> float:
    total = compensation = 0.0
    for value in values:
        total, compensation = kahan_inc(value, (total, compensation))
    return total if math.isinf(total) else total + compensation


def variance_over_time(values: Values) -> float:
    """Population variance by Welford's method with compensated sums."""
    count = mean = c_mean = aux = c_aux = 0.0
    for value in values:
        count += 1
        delta = value - (mean + c_mean)
        mean, c_mean = kahan_inc(delta / count, (mean, c_mean))
        aux, c_aux = kahan_inc(delta * (value - (mean + c_mean)), (aux, c_aux))
    return (aux + c_aux) / count


def min_over_time(values: Values) -> float:
    result = values[0]
    for value in values:
        if value < result or math.isnan(result):
            result = value
    return result


def max_over_time(values: Values) -> float:
    result = values[0]
    for value in values:
        if value > result or math.isnan(result):
            result = value
    return result


def changes(values: Values) -> float:
    count = 0
    previous = values[0]
    for value in values[1:]:
        if value != previous and not (math.isnan(value) and math.isnan(previous)):
            count += 1
        previous = value
    return float(count)


def resets(values: Values) -> float:
    count = 0
    previous = values[0]
    for value in values[1:]:
        if value < previous:
            count += 1
        previous = value
    return float(count)


def quantile(q: float, values: Sequence[float]) -> float:
    """The q-quantile by linear interpolation between closest ranks (NaNs sort first)."""
    if not values or math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    ordered = sorted(values, key=lambda value: (not math.isnan(value), value))
    n = float(len(ordered))
    rank = q * (n - 1)
    lower = max(0.0, math.floor(rank))
    upper = min(n - 1, lower + 1)
    weight = rank - math.floor(rank)
    return ordered[int(lower)] * (1 - weight) + ordered[int(upper)] * weight


# Range functions that need nothing but the samples.
SIMPLE_RANGE_FUNCTIONS: dict[str, Callable[[Values], float]] = {
    "avg_over_time": avg_over_time,
    "sum_over_time": sum_over_time,
    "count_over_time": lambda values: float(len(values)),
    "min_over_time": min_over_time,
    "max_over_time": max_over_time,
    "stdvar_over_time": variance_over_time,
    "stddev_over_time": lambda values: math.sqrt(variance_over_time(values)),
    "last_over_time": lambda values: values[-1],
    "present_over_time": lambda _values: 1.0,
    "changes": changes,
    "resets": resets,
}

# Element-wise functions of instant vectors; all drop the metric name.
MATH_FUNCTIONS: dict[str, Callable[[float], float]] = {
    "abs": abs,
    "ceil": go_ceil,
    "floor": go_floor,
    "sqrt": go_sqrt,
    "exp": go_exp,
    "ln": go_log,
    "log2": go_log2,
    "log10": go_log10,
}


def go_round(value: float, to_nearest: float) -> float:
    """round(): ties go up, and the step is inverted first, as Prometheus does."""
    inverse = go_div(1.0, to_nearest)
    return go_div(go_floor(value * inverse + 0.5), inverse)


def bucket_quantile(q: float, buckets: list[tuple[float, float]]) -> float:  # noqa: PLR0911
    """histogram_quantile() for one histogram's (upper bound, cumulative count) buckets.

    Requires a +Inf bucket. Buckets with equal bounds are merged, and counts are forced to
    be non-decreasing (scrapes of different buckets are not atomic, so a later bucket can
    momentarily count less). A rank in the +Inf bucket returns the highest finite bound; a
    rank in the first bucket interpolates from 0, unless that bucket's bound is <= 0.
    """
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    ordered = sorted(buckets, key=lambda bucket: bucket[0])
    if not math.isinf(ordered[-1][0]) or ordered[-1][0] < 0:
        return math.nan
    merged: list[list[float]] = []
    for bound, count in ordered:
        if merged and merged[-1][0] == bound:
            merged[-1][1] += count
        else:
            merged.append([bound, count])
    highest = -math.inf
    for bucket in merged:
        if bucket[1] > highest:
            highest = bucket[1]
        elif bucket[1] < highest:
            bucket[1] = highest
    if len(merged) < 2:
        return math.nan
    observations = merged[-1][1]
    if observations == 0:
        return math.nan
    rank = q * observations
    index = next((i for i in range(len(merged) - 1) if merged[i][1] >= rank), len(merged) - 1)
    if index == len(merged) - 1:
        return merged[-2][0]
    if index == 0 and merged[0][0] <= 0:
        return merged[0][0]
    start = 0.0
    end, count = merged[index]
    if index > 0:
        start = merged[index - 1][0]
        count -= merged[index - 1][1]
        rank -= merged[index - 1][1]
    return start + (end - start) * (rank / count)


def parse_go_float(text: str) -> float | None:
    """Go's strconv.ParseFloat for a bucket's `le`: None where Go would fail."""
    if not text or text != text.strip() or "_" in text:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def format_go_float(value: float) -> str:
    """Go's FormatFloat(v, 'f', -1, 64): shortest digits, never an exponent."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return format(Decimal(repr(value)).normalize(), "f")


def expand_template(template: str, match: label_regex.Captures) -> str:
    """Go's Regexp.ExpandString: `$1`, `${1}`, `$name`, `${name}`, `$$` for a dollar.

    As in Go, the name after `$` runs as long as letters, digits and underscores go, so
    `$1x` names a group "1x" (usually absent: the empty string), not group 1 and "x".
    """
    out: list[str] = []
    rest = template
    while (dollar := rest.find("$")) >= 0:
        out.append(rest[:dollar])
        rest = rest[dollar + 1 :]
        if rest.startswith("$"):
            out.append("$")
            rest = rest[1:]
            continue
        name, after = _template_name(rest)
        if name is None:
            out.append("$")  # malformed: the dollar stands for itself
            continue
        rest = after
        group = _group_number(name)
        if group is None:
            group = match.names.get(name)
        if group is not None:
            out.append(match.text(group))
    out.append(rest)
    return "".join(out)


def _template_name(text: str) -> tuple[str | None, str]:
    braced = text.startswith("{")
    body = text[1:] if braced else text
    length = 0
    # Go's name characters: letters (Python's isalpha) and decimal digits (isdecimal, not
    # isalnum, which also takes "²" and "½").
    while length < len(body) and (
        body[length].isalpha() or body[length].isdecimal() or body[length] == "_"
    ):
        length += 1
    if length == 0:
        return None, text
    if braced:
        if length >= len(body) or body[length] != "}":
            return None, text
        return body[:length], body[length + 1 :]
    return body[:length], body[length:]


def _group_number(name: str) -> int | None:
    """The group a name numbers, as Go reads it: ASCII digits, no leading zero, below 1e8."""
    digits = name.isascii() and name.isdigit()
    if not digits or (len(name) > 1 and name[0] == "0") or len(name) > 8:
        return None
    return int(name)


# -- instant-vector functions with labels to manage ------------------------------------------

InstantVector = list[tuple[Labels, float]]


def clamp(name: str, vector: InstantVector, *, bounds: list[float]) -> InstantVector:
    drop = METRIC_NAME
    if name == "clamp_min":
        return [(labels.without(drop), go_max(bounds[0], v)) for labels, v in vector]
    if name == "clamp_max":
        return [(labels.without(drop), go_min(bounds[0], v)) for labels, v in vector]
    low, high = bounds
    if high < low:
        return []
    return [(labels.without(drop), go_max(low, go_min(high, v))) for labels, v in vector]


def histogram_quantile(q: float, vector: InstantVector) -> InstantVector:
    histograms: dict[Labels, tuple[Labels, list[tuple[float, float]]]] = {}
    for labels, value in vector:
        bound = parse_go_float(labels.get("le", ""))
        if bound is None:
            continue  # not a bucket: Prometheus skips it silently
        key = labels.without("le")
        entry = histograms.get(key)
        if entry is None:
            entry = histograms[key] = (labels.without(METRIC_NAME, "le"), [])
        entry[1].append((bound, value))
    return [(labels, bucket_quantile(q, buckets)) for labels, buckets in histograms.values()]


def label_replace(
    vector: InstantVector, *, destination: str, replacement: str, source: str, regex: str
) -> InstantVector:
    # Compiled as Prometheus compiles it, anchored around the user's text, and searched:
    # the same pattern with the same leftmost-first groups gives the same replacement.
    try:
        pattern = label_regex.Regex(f"^(?:{regex})$")
    except label_regex.RegexError as exc:
        raise PromQLError(f"invalid regular expression in label_replace(): {regex}") from exc
    if not is_valid_label_name(destination):
        raise PromQLError(f"invalid destination label name in label_replace(): {destination}")
    out: InstantVector = []
    for labels, value in vector:
        found = pattern.search(labels.get(source, ""))
        if found is None:
            out.append((labels, value))
            continue
        result = expand_template(replacement, found)
        out.append((labels.with_({destination: result}), value))
    return out


def label_join(
    vector: InstantVector, *, destination: str, separator: str, sources: list[str]
) -> InstantVector:
    for source in sources:
        if not is_valid_label_name(source):
            raise PromQLError(f"invalid source label name in label_join(): {source}")
    if not is_valid_label_name(destination):
        raise PromQLError(f"invalid destination label name in label_join(): {destination}")
    return [
        (labels.with_({destination: separator.join(labels.get(s, "") for s in sources)}), value)
        for labels, value in vector
    ]
