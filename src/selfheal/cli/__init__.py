"""The `selfheal` command line (Typer). Entry point: `selfheal.cli.app:main`."""

from selfheal.cli import app

__all__ = ["app"]
