"""File-format helpers every stage shares.

YAML that remembers where each value came from, durations written the Prometheus way, and
pydantic errors turned into `ConfigError`s that name file:line:col and the field path.
"""

from selfheal.formats import durations, sourced_yaml
from selfheal.formats.durations import format_duration, parse_duration
from selfheal.formats.sourced_yaml import SourcedDocument, load_model, load_model_file, load_yaml

__all__ = [
    "SourcedDocument",
    "durations",
    "format_duration",
    "load_model",
    "load_model_file",
    "load_yaml",
    "parse_duration",
    "sourced_yaml",
]
