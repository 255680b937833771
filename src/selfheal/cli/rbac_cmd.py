"""`selfheal rbac`: the least-privilege Role for a runbooks directory, as YAML.

The runbooks are loaded as the controller loads them (a bad one is refused at its
file:line:col, exit 2), then `selfheal.runtime.rbac` makes the ServiceAccount, the Role (or
ClusterRole) and the binding. With `--out`, the whole text is written to a file beside the
target and renamed over it, so a failure never leaves half a Role behind.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from selfheal.domain.errors import ConfigError
from selfheal.runtime import controller, rbac
from selfheal.workflows import runbook as runbook_module


def generate_rbac(
    runbooks: Annotated[
        Path, typer.Option("--runbooks", help="The runbooks directory the controller runs.")
    ],
    namespace: Annotated[
        str,
        typer.Option(
            "--namespace",
            help="The namespace of the ServiceAccount and the Role: the one whose workloads "
            "the runbooks act on.",
        ),
    ] = rbac.DEFAULT_NAMESPACE,
    cluster_wide: Annotated[
        bool,
        typer.Option(
            "--cluster-wide",
            help="A ClusterRole and ClusterRoleBinding: the same verbs in every namespace.",
        ),
    ] = False,
    name: Annotated[
        str, typer.Option("--name", help="The name of the ServiceAccount, Role and binding.")
    ] = rbac.DEFAULT_NAME,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the YAML here instead of to stdout.")
    ] = None,
) -> None:
    """Print the Role granting exactly what the runbooks' steps call, with its binding."""
    try:
        loaded = runbook_module.load_runbooks(runbooks, step_types=controller.step_types())
        text = rbac.render(loaded, name=name, namespace=namespace, cluster_wide=cluster_wide)
        if out is None:
            sys.stdout.write(text)
        else:
            _write_whole(out, text)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        raise typer.Exit(code=2) from None


def _write_whole(path: Path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, then rename it over `path`."""
    try:
        handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from exc
    temporary = Path(name)
    try:
        # A manifest is no secret: readable as any file the user writes (mkstemp gives 0600).
        os.fchmod(handle, 0o644)
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        temporary.replace(path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from exc
