"""Every command that reads a user's file refuses a bad one with one line naming it, exit 2.

Bad is: not UTF-8 (Latin-1 `café`), 50 MB (sparse, so refusing it must not mean reading
it), a directory where a file belongs, a file that is not there. Each run ends before
anything starts, so each is about as fast as `selfheal --help`.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from support import selfheal

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "flash-sale"
FIFTY_MB = 50 * 1024 * 1024


def latin1(path: Path) -> str:
    path.write_bytes(b"caf\xe9: 1\n")
    return ":1:4: not UTF-8 (byte 0xe9); save the file as UTF-8"


def fifty_megabytes(path: Path) -> str:
    with path.open("wb") as handle:
        handle.truncate(FIFTY_MB)  # a hole: the file reads as 50 MB of NULs without the disk
    return ": the file is 52,428,800 bytes, over the "


def directory(path: Path) -> str:
    path.mkdir()
    return ": cannot read the "


def missing(path: Path) -> str:
    return ": cannot read the "


# Each makes `path` bad in one way and returns what follows the path in the error.
BAD: dict[str, Callable[[Path], str]] = {
    "not UTF-8": latin1,
    "50 MB": fifty_megabytes,
    "a directory": directory,
    "missing": missing,
}

FILE_COMMANDS = {
    "run --config": ["run", "--config"],
    "demo --config": ["demo", "--config"],
    "guardrails check": ["guardrails", "check"],
    "simulate --scenario": ["simulate", "--no-controller", "--scenario"],
    "simulate --detect --scenario": ["simulate", "--detect", "--scenario"],
}


def assert_one_error_line(result: subprocess.CompletedProcess[str], *, starts: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output
    # `demo` prints its timeline's heading before the config is read; nothing else may.
    assert result.stdout in {"", "the controller is watching the twin; events in scenario time:\n"}
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith(f"error: {starts}"), result.stderr


@pytest.mark.parametrize("bad", BAD)
@pytest.mark.parametrize("command", FILE_COMMANDS)
def test_a_bad_file_is_one_error_line_naming_it(command: str, bad: str, tmp_path: Path) -> None:
    """`run`, `demo`, `guardrails check` and `simulate` name the file and say what is wrong."""
    path = tmp_path / "input.yaml"
    after = BAD[bad](path)
    result = selfheal(*FILE_COMMANDS[command], str(path), timeout=60)
    assert_one_error_line(result, starts=f"{path}{after}")


@pytest.mark.parametrize("bad", ["not UTF-8", "50 MB", "a directory"])
@pytest.mark.parametrize("command", ["test", "lint"])
def test_a_bad_rego_file_is_one_error_line_naming_it(
    command: str, bad: str, tmp_path: Path
) -> None:
    """`policy test DIR` and `policy lint DIR` name the .rego file that cannot be read."""
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "good.rego").write_text("package selfheal.remediation\n", encoding="utf-8")
    path = policies / "remediation.rego"
    after = BAD[bad](path)
    runbooks = ["--runbooks", str(EXAMPLE / "runbooks")] if command == "lint" else []
    result = selfheal("policy", command, *runbooks, str(policies), timeout=60)
    assert_one_error_line(result, starts=f"{path}{after}")


@pytest.mark.parametrize("command", ["test", "lint"])
def test_a_policy_directory_that_is_not_there_is_named(command: str, tmp_path: Path) -> None:
    """A missing DIR is said to be missing, not merely not a directory."""
    result = selfheal("policy", command, str(tmp_path / "nowhere"), timeout=60)
    assert_one_error_line(result, starts=f"{tmp_path / 'nowhere'}: no such directory")


@pytest.mark.parametrize("bad", BAD)
def test_rules_test_names_a_bad_file_as_promtool_would_fail_it(bad: str, tmp_path: Path) -> None:
    """`rules test` keeps promtool's contract (exit 1, FAILED) but names the file, no traceback."""
    path = tmp_path / "input.test.yaml"
    after = BAD[bad](path)
    result = selfheal("rules", "test", str(path), timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output
    if bad == "missing":  # promtool checks every path before testing any
        assert result.stderr == f"error: path {str(path)!r} does not exist\n"
    else:
        assert result.stderr.splitlines()[-1].startswith(f"{path}{after}"), result.stderr


@pytest.fixture
def example(tmp_path: Path) -> Path:
    """A copy of the flash-sale example with its state inside the copy."""
    copy = tmp_path / "example"
    shutil.copytree(EXAMPLE, copy)
    config = copy / "selfheal.yaml"
    text = config.read_text(encoding="utf-8").replace("../../.selfheal/flash-sale", "state")
    config.write_text(text, encoding="utf-8")
    return copy


@pytest.mark.parametrize(
    ("referenced", "bad"),
    [
        ("rules.yaml", "not UTF-8"),
        ("runbooks/scale-up.yaml", "50 MB"),
        ("guardrails.yaml", "not UTF-8"),
    ],
)
def test_demo_names_a_bad_file_its_config_refers_to(
    referenced: str, bad: str, example: Path
) -> None:
    """A rule file, runbook or guardrails file named by the config is refused by its own name."""
    path = example / referenced
    path.unlink()
    after = BAD[bad](path)
    result = selfheal("demo", "--config", str(example / "selfheal.yaml"), timeout=60)
    assert_one_error_line(result, starts=f"{path}{after}")
    assert not (example / "state").exists(), "state was created before the files were read"
