"""The Dockerfile, checked statically: no container engine runs here or in CI.

What must not rot without anyone noticing: two stages, wheels built under constraints.txt,
a slim runtime stage without build tools that runs as a fixed non-root user (the one the
manifests in deploy/ name), and the entry point and config path the Deployment relies on.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BUILD_TOOLS = ("gcc", "g++", "build-essential", "make", "cargo", "rustc", "git", "curl", "wget")


@dataclass
class Stage:
    """One FROM ... section: its base image, name and instructions (keyword, argument)."""

    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def arguments(self, keyword: str) -> list[str]:
        return [argument for word, argument in self.instructions if word == keyword]


def stages(text: str) -> list[Stage]:
    """The Dockerfile's stages; continuation lines joined, comments dropped."""
    joined = re.sub(
        r"\\\n",
        " ",
        "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")),
    )
    found: list[Stage] = []
    for line in joined.splitlines():
        if not line.strip():
            continue
        keyword, _, argument = line.strip().partition(" ")
        keyword, argument = keyword.upper(), " ".join(argument.split())
        if keyword == "FROM":
            words = argument.split()
            name = words[2] if len(words) > 2 and words[1].upper() == "AS" else None
            found.append(Stage(base=words[0], name=name))
        elif found:
            found[-1].instructions.append((keyword, argument))
    return found


@pytest.fixture(scope="module")
def dockerfile() -> list[Stage]:
    return stages((ROOT / "Dockerfile").read_text(encoding="utf-8"))


def test_it_builds_in_one_stage_and_runs_from_another(dockerfile: list[Stage]) -> None:
    """Multi-stage: what the build needs never reaches the image that runs."""
    assert len(dockerfile) >= 2
    build, runtime = dockerfile[0], dockerfile[-1]
    assert any(f"--from={build.name}" in copy for copy in runtime.arguments("COPY"))
    assert runtime.base.endswith("-slim")


def test_wheels_are_built_under_the_projects_constraints(dockerfile: list[Stage]) -> None:
    """The wheels are built with `pip wheel -c constraints.txt`: the pins CI tested."""
    build = dockerfile[0]
    assert any("pip wheel" in run and "-c constraints.txt" in run for run in build.arguments("RUN"))
    assert any("constraints.txt" in copy for copy in build.arguments("COPY"))


def test_the_runtime_stage_installs_only_the_built_wheels_and_no_build_tools(
    dockerfile: list[Stage],
) -> None:
    """No index at install time, no compiler or fetcher installed, pip removed after."""
    runs = " ".join(dockerfile[-1].arguments("RUN"))
    assert "pip install" in runs
    assert "--no-index" in runs
    assert "pip uninstall --yes pip" in runs
    words = set(shlex.split(runs))
    assert not words & set(BUILD_TOOLS)
    assert "apt-get" not in words


def test_it_runs_as_a_numeric_non_root_user_the_manifests_name(dockerfile: list[Stage]) -> None:
    """USER is numeric (runAsNonRoot can check it) and is the Deployment's runAsUser."""
    (user,) = dockerfile[-1].arguments("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit()
    assert int(uid) != 0
    assert not gid or (gid.isdigit() and int(gid) != 0)
    deployment = yaml.safe_load((ROOT / "deploy" / "base" / "deployment.yaml").read_text("utf-8"))
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["securityContext"]["runAsUser"] == int(uid)


def test_the_entry_point_is_selfheal_running_the_mounted_config(dockerfile: list[Stage]) -> None:
    """ENTRYPOINT selfheal; by default `run` on the config path deploy/ mounts."""
    runtime = dockerfile[-1]
    assert [json.loads(item) for item in runtime.arguments("ENTRYPOINT")] == [["selfheal"]]
    (command,) = [json.loads(item) for item in runtime.arguments("CMD")]
    assert command == ["run", "--config", "/etc/selfheal/selfheal.yaml"]
    deployment = yaml.safe_load((ROOT / "deploy" / "base" / "deployment.yaml").read_text("utf-8"))
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["args"][:3] == command


def test_the_build_context_leaves_out_everything_but_the_package_sources() -> None:
    """.dockerignore admits what the build stage copies, and nothing like .venv or .git."""
    rules = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules[0] == "*"
    admitted = {rule.removeprefix("!").rstrip("/") for rule in rules if rule.startswith("!")}
    assert admitted == {"pyproject.toml", "constraints.txt", "README.md", "src"}
