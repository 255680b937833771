"""Which controller state a command works on: `--config`, `--state-dir`, or the default.

Commands that read or write a controller's state (approve, deny, incidents, audit,
guardrails reset) find it the way `selfheal run` does: `--config FILE` names the
controller's config, whose `state_dir` is the state (or whose `state.url` is, for replicas
on PostgreSQL); `--state-dir DIR` names the directory
itself (and wins over the config's). With neither, the state is `.selfheal/state` under the
working directory, the same default `state_dir` a config without one has.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from selfheal.domain.errors import ConfigError
from selfheal.runtime import state_lock
from selfheal.runtime.settings import Settings, load_settings

DEFAULT_STATE_DIR = Path(".selfheal/state")

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="The controller's selfheal.yaml: its state_dir is the state."
    ),
]
StateDirOption = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        help="The controller's state directory (default: the config's, else .selfheal/state).",
    ),
]


@dataclass(frozen=True, slots=True)
class ChosenState:
    """A state directory, and the settings of its controller when they are known."""

    directory: Path
    settings: Settings | None

    @property
    def database(self) -> Path:
        return self.directory / "state.db"

    @property
    def store_url(self) -> str:
        """The store's URL: the replicas' shared database, else the directory's SQLite file."""
        if self.settings is not None and self.settings.state.url is not None:
            return self.settings.state.url
        return f"sqlite:///{self.database}"


def choose(*, config: Path | None, state_dir: Path | None) -> ChosenState:
    """The state the options name (see the module docstring); ConfigError if it has none."""
    settings = load_settings(config) if config is not None else None
    if state_dir is not None:
        directory = state_dir
    elif settings is not None:
        directory = settings.path(settings.state_dir)
    else:
        directory = DEFAULT_STATE_DIR
    if settings is not None and settings.state.shared:
        return ChosenState(directory, settings)  # the replicas' database holds the state
    if not (directory / "state.db").is_file():
        hint = (
            f"is the controller's state_dir {directory}?"
            if config is not None or state_dir is not None
            else "pass --config FILE (the controller's config) or --state-dir DIR"
        )
        raise ConfigError(f"no state database at {directory / 'state.db'}; {hint}")
    return ChosenState(directory, settings)


def settings_of(state: ChosenState) -> Settings:
    """The settings of the state's controller: given, or from the config its lock names."""
    if state.settings is not None:
        return state.settings
    recorded = state_lock.holder_of(state.directory).get("config")
    if isinstance(recorded, str) and Path(recorded).is_file():
        return load_settings(Path(recorded))
    raise ConfigError(
        f"the state at {state.directory} names no config; pass --config FILE (the "
        "controller's config)"
    )
