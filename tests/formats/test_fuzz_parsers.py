"""Every parser of outside input, fed anything: it parses, or refuses with the documented error.

Property-based fuzzing with Hypothesis (coverage-guided fuzzers such as atheris are not
installed here). Each parser gets four kinds of input:

- arbitrary bytes, and arbitrary text (any code point, surrogates included where the
  input is text);
- a real document (the flash-sale example's files, the golden payloads of real senders)
  with a span of its text replaced by a random string or a YAML/JSON token;
- the same document parsed, changed in one to three places (a value replaced by any
  other, a key deleted, an unknown key added), and written back;
- for the binary payloads, the real message with bytes flipped, cut short or extended,
  then compressed as its sender compresses it.

The files users write (rule files, runbooks, guardrails, configs) must load or raise
`ConfigError` naming the file; token files raise `ConfigError`, PromQL `PromQLError` (one);
the receivers (Alertmanager webhooks, remote-write, OTLP protobuf and JSON) must parse or
raise `PayloadError` (or its `PayloadTooLarge`); a gzip or deflate OTLP body sent to the
API is answered below 500.
Nothing else may escape, and nothing may hang (each test has a hard timeout). Examples per
test are bounded (`EXAMPLES`) and derandomized, so CI runs the same inputs every time;
`pytest --hypothesis-show-statistics` reports them, with the share parsed and refused.
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import json
import os
import shutil
import warnings
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cramjam
import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from starlette.exceptions import StarletteDeprecationWarning

from selfheal.api import create_app
from selfheal.api.auth import parse_token_file, token_digest
from selfheal.api.guard import RateLimit
from selfheal.decision.guardrails import load_guardrails
from selfheal.domain.errors import ConfigError
from selfheal.runtime.controller import step_types
from selfheal.runtime.settings import load_settings
from selfheal.telemetry import promql, receivers
from selfheal.telemetry.receivers import alertmanager, otlp, remote_write
from selfheal.telemetry.rules import load_rule_file
from selfheal.workflows.runbook import load_runbook

from support import ApiCallers

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "flash-sale"
GOLDEN = ROOT / "tests" / "api" / "golden"
# Examples per parser: few enough that the whole file runs in well under a minute on a busy
# machine. `SELFHEAL_FUZZ_EXAMPLES=3000 pytest tests/formats/test_fuzz_parsers.py` runs a
# campaign instead: that many examples per parser, drawn at random (Hypothesis prints the
# seed that reproduces a failure).
EXAMPLES = 150
CAMPAIGN = os.environ.get("SELFHEAL_FUZZ_EXAMPLES")
FUZZ = settings(
    max_examples=int(CAMPAIGN or EXAMPLES),
    derandomize=CAMPAIGN is None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
pytestmark = pytest.mark.timeout(300 if CAMPAIGN is None else 3600)
# A decoded remote-write body over this is PayloadTooLarge; small, so the fuzzer reaches it.
MAX_DECODED = 64 * 1024

# -- input strategies ---------------------------------------------------------------------

ANY_TEXT = st.text(st.characters(exclude_categories=[]), max_size=300)
ANY_BYTES = st.binary(max_size=600)
# Tokens that change what a YAML or JSON document means, spliced into real ones.
TOKENS = st.sampled_from(
    [
        "&a ",
        "*a",
        "<<: *a",
        "!!python/object/apply:os.system ['true']",
        "!!binary AAAA",
        "!!int x",
        "!!float",
        "---\n",
        "...\n",
        "? ",
        "- ",
        ": ",
        "{",
        "}",
        "[",
        "]",
        "'",
        '"',
        "\\",
        "\t",
        "\x00",
        "\ufeff",
        "\ud800",
        "%YAML 1.1\n",
        "1:2:3:4:5:6",
        "9" * 400,
        "1e999",
        "-0",
        "NaN",
        ".inf",
        "null",
        "true",
        "{{ params.x }}",
        "{{",
        "$1",
        "\n  ",
    ]
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(st.characters(exclude_categories=["Cs"]), max_size=30),
    st.sampled_from(["", "1s", "0s", "-5m", "1y2d", "99999999999h", "{{ x }}", "up", "~"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(SCALARS, inner, max_size=3),
    max_leaves=10,
)


@st.composite
def spliced(draw: st.DrawFn, text: str) -> str:
    """`text` with one span (up to 40 characters) replaced by a token or random text."""
    start = draw(st.integers(0, len(text)))
    end = draw(st.integers(start, min(len(text), start + 40)))
    middle = draw(TOKENS | st.text(st.characters(exclude_categories=[]), max_size=12))
    return text[:start] + middle + text[end:]


def places(document: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path to a value in a parsed document, the root's `()` first."""
    yield path
    if isinstance(document, dict):
        for key, value in document.items():
            yield from places(value, (*path, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            yield from places(value, (*path, index))


@st.composite
def changed(draw: st.DrawFn, document: Any) -> Any:
    """The parsed document changed in one to three places: replaced, deleted or added to."""
    result = copy.deepcopy(document)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(list(places(result))))
        if not path:
            result = draw(VALUES)
            continue
        *parents, last = path
        parent = result
        for step in parents:
            parent = parent[step]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            parent[last] = draw(VALUES)
        elif action == "delete":
            del parent[last]
        elif isinstance(parent[last], dict):
            parent[last][draw(SCALARS)] = draw(VALUES)
        elif isinstance(parent[last], list):
            parent[last].append(draw(VALUES))
    return result


def yaml_inputs(text: str) -> st.SearchStrategy[bytes]:
    """Bytes for a YAML file: arbitrary, or the real `text` spliced, or changed and dumped."""
    document = yaml.safe_load(text)
    return st.one_of(
        ANY_BYTES,
        ANY_TEXT.map(_utf8),
        spliced(text).map(_utf8),
        changed(document).map(lambda changed_document: _utf8(_dump(changed_document))),
    )


def json_inputs(text: str) -> st.SearchStrategy[bytes]:
    """Bytes for a JSON body: arbitrary, the real `text` spliced, or changed and dumped."""
    document = json.loads(text)
    return st.one_of(
        ANY_BYTES,
        ANY_TEXT.map(_utf8),
        spliced(text).map(_utf8),
        changed(document).map(lambda changed_document: _utf8(_json(changed_document))),
    )


@st.composite
def damaged(draw: st.DrawFn, message: bytes) -> bytes:
    """A binary message with bytes flipped, cut short, or extended with random bytes."""
    data = bytearray(message)
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["flip", "cut", "extend"]))
        if action == "flip" and data:
            index = draw(st.integers(0, len(data) - 1))
            data[index] = draw(st.integers(0, 255))
        elif action == "cut":
            del data[draw(st.integers(0, len(data))) :]
        else:
            data[draw(st.integers(0, len(data))) : 0] = draw(st.binary(max_size=16))
    return bytes(data)


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _dump(document: Any) -> str:
    try:
        return yaml.safe_dump(document, allow_unicode=True, sort_keys=False)
    except yaml.YAMLError:  # a key PyYAML cannot write (a list): keep the document's repr
        return repr(document)


def _json(document: Any) -> str:
    try:
        return json.dumps(document)
    except (TypeError, ValueError):  # keys JSON cannot hold: the document as text
        return repr(document)


# -- the checks ---------------------------------------------------------------------------


def parses_or_refuses(parse: Callable[[], object], refusal: type[Exception]) -> None:
    """`parse()` returns, or raises `refusal` with a message; anything else escapes."""
    try:
        parse()
    except refusal as exc:
        refused = exc
    else:
        event("parsed")
        return
    event("refused")
    assert str(refused).strip(), f"{type(refused).__name__} without a message"


def refuses_naming_the_file(load: Callable[[Path], object], path: Path) -> None:
    """A file loader returns, or raises ConfigError whose location names the file."""
    try:
        load(path)
    except ConfigError as exc:
        refused = exc
    else:
        event("loaded")
        return
    event("refused")
    assert str(path) in str(refused), f"the error does not name the file: {refused}"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the flash-sale example, its files overwritten one example at a time."""
    target = tmp_path_factory.mktemp("fuzz") / "flash-sale"
    shutil.copytree(EXAMPLE, target)
    return target


# -- the file formats users write ---------------------------------------------------------


@FUZZ
@given(data=yaml_inputs((EXAMPLE / "rules.yaml").read_text(encoding="utf-8")))
def test_any_rule_file_loads_or_is_refused_naming_the_file(folder: Path, data: bytes) -> None:
    path = folder / "fuzzed.rules.yaml"
    path.write_bytes(data)
    refuses_naming_the_file(load_rule_file, path)


STEP_TYPES = step_types()


@FUZZ
@given(data=yaml_inputs((EXAMPLE / "runbooks" / "scale-up.yaml").read_text(encoding="utf-8")))
def test_any_runbook_loads_or_is_refused_naming_the_file(folder: Path, data: bytes) -> None:
    path = folder / "fuzzed.runbook.yaml"
    path.write_bytes(data)
    refuses_naming_the_file(lambda where: load_runbook(where, step_types=STEP_TYPES), path)


@FUZZ
@given(data=yaml_inputs((EXAMPLE / "guardrails.yaml").read_text(encoding="utf-8")))
def test_any_guardrails_file_loads_or_is_refused_naming_the_file(folder: Path, data: bytes) -> None:
    path = folder / "fuzzed.guardrails.yaml"
    path.write_bytes(data)
    refuses_naming_the_file(load_guardrails, path)


@FUZZ
@given(data=yaml_inputs((EXAMPLE / "selfheal.yaml").read_text(encoding="utf-8")))
def test_any_config_file_loads_or_is_refused_naming_the_file(folder: Path, data: bytes) -> None:
    """The config sits beside the example's rules, policies and runbooks, which it names."""
    path = folder / "selfheal.yaml"
    path.write_bytes(data)
    refuses_naming_the_file(load_settings, path)


TOKEN_FILE = "\n".join(
    [
        "tokens:",
        "  - identity: alertmanager",
        "    roles: [sender]",
        f"    sha256: {token_digest('a token')}",
        "  - identity: Alice",
        "    roles: [approver, viewer]",
        f"    sha256: {hashlib.sha256(b'another').hexdigest()}",
        "",
    ]
)


@FUZZ
@given(data=yaml_inputs(TOKEN_FILE))
def test_any_token_file_parses_or_is_refused(data: bytes) -> None:
    """Token files are read as text (`text_files`) before they are parsed; any text here."""
    text = data.decode("utf-8", "surrogatepass") if _decodes(data) else data.decode("latin-1")
    parses_or_refuses(lambda: parse_token_file(text, source="tokens.yaml"), ConfigError)


def _decodes(data: bytes) -> bool:
    try:
        data.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return False
    return True


QUERIES = [
    'sum by (job) (rate(http_requests_total{code=~"5..", job!~"test|dev"}[5m]))',
    "histogram_quantile(0.9, sum by (le) (rate(request_seconds_bucket[1m]))) > 0.5",
    'label_replace(up, "host", "$1", "instance", "(.*):.*") offset 5m',
    "max_over_time(deriv(x[10m:1m])[1h:]) @ start() and on (pod) group_left y",
]


@FUZZ
@given(text=st.one_of(ANY_TEXT, *(spliced(query) for query in QUERIES)))
def test_any_promql_expression_parses_or_is_refused(text: str) -> None:
    parses_or_refuses(lambda: promql.parse(text), promql.PromQLError)


# -- what other tools push to the API -----------------------------------------------------

WEBHOOK = (GOLDEN / "alertmanager_firing.json").read_text(encoding="utf-8")


@FUZZ
@given(body=json_inputs(WEBHOOK))
def test_any_alertmanager_webhook_parses_or_is_refused(body: bytes) -> None:
    parses_or_refuses(lambda: alertmanager.parse_webhook(body), receivers.PayloadError)


WRITE_REQUEST = bytes(cramjam.snappy.decompress_raw((GOLDEN / "remote_write.snappy").read_bytes()))


def _snappy(message: bytes) -> bytes:
    return bytes(cramjam.snappy.compress_raw(message))


@FUZZ
@given(
    body=st.one_of(
        ANY_BYTES,
        ANY_BYTES.map(_snappy),
        damaged(WRITE_REQUEST).map(_snappy),
        damaged(_snappy(WRITE_REQUEST)),
    )
)
def test_any_remote_write_body_parses_or_is_refused(body: bytes) -> None:
    parses_or_refuses(
        lambda: remote_write.parse_write_request(body, max_decoded_bytes=MAX_DECODED),
        receivers.PayloadError,
    )


OTLP_PROTOBUF = (GOLDEN / "otlp_metrics.pb").read_bytes()
OTLP_JSON = (GOLDEN / "otlp_metrics.json").read_text(encoding="utf-8")


@FUZZ
@given(
    body=st.one_of(ANY_BYTES, damaged(OTLP_PROTOBUF)),
    now=st.none() | st.floats(min_value=0, max_value=4e9),
)
def test_any_otlp_protobuf_body_parses_or_is_refused(body: bytes, now: float | None) -> None:
    parses_or_refuses(
        lambda: otlp.parse_metrics(body, content_type="application/x-protobuf", now=now),
        receivers.PayloadError,
    )


@FUZZ
@given(body=json_inputs(OTLP_JSON), now=st.none() | st.floats(min_value=0, max_value=4e9))
def test_any_otlp_json_body_parses_or_is_refused(body: bytes, now: float | None) -> None:
    parses_or_refuses(
        lambda: otlp.parse_metrics(body, content_type="application/json", now=now),
        receivers.PayloadError,
    )


class Sinks:
    """Takes whatever reaches the ports; this test only watches the answers."""

    def receive(self, batch: object) -> None:
        del batch

    def write(self, samples: object) -> None:
        del samples


CALLERS = ApiCallers()


@pytest.fixture(scope="module")
def otlp_client() -> Iterator[TestClient]:
    app = create_app(
        alerts=Sinks(),
        samples=Sinks(),
        authenticator=CALLERS.authenticator,
        max_body_bytes=64 * 1024,
        rate_limit=RateLimit(per_second=1e9, burst=10**9),  # every request reaches the route
    )
    with TestClient(app, headers=CALLERS.headers("alertmanager")) as client:
        yield client


def _deflate(data: bytes) -> bytes:
    return zlib.compress(data)


@FUZZ
@given(
    encoding=st.sampled_from(["gzip", "deflate"]),
    content_type=st.sampled_from(["application/x-protobuf", "application/json"]),
    body=st.one_of(
        ANY_BYTES,
        damaged(gzip.compress(OTLP_PROTOBUF)),
        damaged(_deflate(OTLP_JSON.encode())),
        damaged(OTLP_PROTOBUF).map(gzip.compress),
        json_inputs(OTLP_JSON).map(_deflate),
        # Expands past the API's 64 KiB limit: refused as it is decompressed.
        st.integers(65 * 1024, 2**20).map(lambda size: gzip.compress(b"\0" * size)),
    ),
)
def test_any_compressed_otlp_body_is_answered_below_500(
    otlp_client: TestClient, encoding: str, content_type: str, body: bytes
) -> None:
    """Bodies in gzip or deflate, whole, damaged or bombs, are decoded within a bound or refused."""
    response = otlp_client.post(
        "/api/v1/otlp/v1/metrics",
        content=body,
        headers={"content-type": content_type, "content-encoding": encoding},
    )
    event(f"answered {response.status_code}")
    assert response.status_code in {200, 400, 413}, response.text
