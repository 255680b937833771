"""Reading the files users write: one reader, so every kind of file is refused the same way.

Configs, guardrails, rule files, rule tests, runbooks, scenarios, Rego policies and key files
all come through here. Before there was one reader, a file that was not UTF-8 gave a Python
traceback, and a 50 MB config was read, decoded and parsed (90 s, 1.5 GB) before its error.

So each kind of file has a size limit, far above any real file of that kind and low enough
that parsing one stays within seconds. The limit is checked on the file's size before a
byte is read, and again while reading, because a file may grow between the two and a pipe
or a device (`/dev/zero`) reports no size at all. Text must be UTF-8 (a byte-order mark is
accepted and dropped); the first byte that is not is reported at its line and column. Every
failure, an `OSError` included, is a one-line `ConfigError` naming the file.
"""

from __future__ import annotations

import codecs
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from selfheal.domain.errors import ConfigError, SourceLocation

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class FileKind:
    """What a file is to the user (the words errors use) and the most bytes it may hold."""

    name: str
    limit: int


# The examples' configs are 2-3 KB; one with a thousand anomaly watches is about 300 KB.
CONFIG = FileKind("config file", 4 * MIB)
# A guardrails file is a page of limits (the example's is 1 KB).
GUARDRAILS = FileKind("guardrails file", 1 * MIB)
# Generated rule sets are the largest files users hand us (kube-prometheus' whole set is
# about 300 KB); a config may name many rule files. PyYAML parses 4 MiB in about 3 s.
RULES = FileKind("rule file", 4 * MIB)
# promtool test files may spell input series out value by value rather than as `a+bxn`.
RULE_TESTS = FileKind("rule test file", 4 * MIB)
# One runbook is one DAG of steps (the example's is 3 KB); a directory holds many.
RUNBOOK = FileKind("runbook", 1 * MIB)
# Kubernetes objects a check reads (a Role, or a whole rendered deployment that holds one):
# a rendered deployment with its ConfigMaps is tens of KB.
MANIFESTS = FileKind("Kubernetes manifest file", 4 * MIB)
# A scenario names services and faults (the shipped ones are under 2 KB).
SCENARIO = FileKind("scenario file", 1 * MIB)
# Policy files (the example's is 6 KB) may carry allow-lists as literals; the engine holds
# every file of the bundle in memory.
REGO = FileKind("Rego policy file", 4 * MIB)
# A token file is a line of digest, identity and roles per caller (100 bytes each).
TOKENS = FileKind("token file", 1 * MIB)
# An Ed25519 key in PEM is about 120 bytes; a file far larger is not a key.
PRIVATE_KEY = FileKind("private key file", 64 * 1024)
PUBLIC_KEY = FileKind("public key file", 64 * 1024)


def read_text(path: Path, *, kind: FileKind) -> str:
    """The file's text, decoded as UTF-8; ConfigError naming the file on any failure."""
    return decode(read_bytes(path, kind=kind), source=str(path))


def read_bytes(path: Path, *, kind: FileKind) -> bytes:
    """The file's bytes, refusing it unread when it is over `kind`'s limit."""
    location = SourceLocation(str(path))
    try:
        with path.open("rb") as handle:
            info = os.fstat(handle.fileno())
            if stat.S_ISDIR(info.st_mode):  # Linux refuses to open one; other systems may not
                raise ConfigError(
                    f"cannot read the {kind.name}: it is a directory", location=location
                )
            if info.st_size > kind.limit:
                raise ConfigError(
                    f"the file is {info.st_size:,} bytes, over the {_size(kind.limit)} limit "
                    f"for a {kind.name}",
                    location=location,
                )
            content = handle.read(kind.limit + 1)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(
            f"cannot read the {kind.name}: {reason[:1].lower()}{reason[1:]}", location=location
        ) from exc
    if len(content) > kind.limit:
        raise ConfigError(
            f"the file is more than {kind.limit:,} bytes, over the {_size(kind.limit)} limit "
            f"for a {kind.name}",
            location=location,
        )
    return content


def decode(content: bytes, *, source: str) -> str:
    """Bytes as UTF-8 text, without a leading byte-order mark.

    On a byte that is not UTF-8, ConfigError at its `file:line:col` (the column counts
    characters, as YAML and Rego positions do), so an editor can jump to it.
    """
    body = content.removeprefix(codecs.BOM_UTF8)
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = body.rfind(b"\n", 0, exc.start) + 1
        # Everything before the first bad byte decodes, so its characters can be counted.
        column = len(body[line_start : exc.start].decode("utf-8")) + 1
        line = body.count(b"\n", 0, exc.start) + 1
        location = SourceLocation(source, line, column)
        raise ConfigError(
            f"not UTF-8 (byte 0x{body[exc.start]:02x}); save the file as UTF-8",
            location=location,
        ) from exc


def _size(limit: int) -> str:
    return f"{limit // MIB} MiB" if limit % MIB == 0 else f"{limit:,} bytes"
