"""`selfheal rules ...`: work with Prometheus rule files.

`selfheal rules test FILE...` runs rule unit tests in promtool's format and prints and exits
exactly as `promtool test rules` does (0 when every file passes, 1 otherwise, a malformed
file included), so CI scripts and people can use either tool. Unlike the other commands,
a malformed file therefore exits 1, not 2: promtool's contract wins here.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from selfheal.telemetry import ruletest

rules_app = typer.Typer(
    name="rules",
    help="Prometheus alerting and recording rules: unit tests in promtool's format.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@rules_app.callback()
def rules() -> None:
    """Prometheus alerting and recording rules."""
    # A callback keeps `test` a subcommand even while it is the only one.


@rules_app.command("test")
def run_tests(
    files: Annotated[
        list[str] | None,
        typer.Argument(
            help="Test files in promtool's format (`promtool test rules`).",
            metavar="FILE",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run rule unit tests; exit 0 when all pass, 1 when any fails or is malformed."""
    # promtool exits 1 for every kind of refusal, a missing argument included, so these
    # checks are ours rather than Click's (which would exit 2).
    if not files:
        print("error: give at least one test file: selfheal rules test FILE...", file=sys.stderr)
        raise typer.Exit(code=1)
    missing = [name for name in files if not Path(name).exists()]
    if missing:
        # promtool checks every path before testing any.
        for name in missing:
            print(f"error: path {name!r} does not exist", file=sys.stderr)
        raise typer.Exit(code=1)
    raise typer.Exit(code=ruletest.run_files(files, out=sys.stdout, err=sys.stderr))
