"""File-format helpers every stage shares.

One reader for every file a user writes (size limits, UTF-8, one-line errors), YAML that
remembers where each value came from and refuses documents costly to load, durations written
the Prometheus way, and pydantic errors turned into `ConfigError`s that name file:line:col
and the field path.
"""

from selfheal.formats import durations, guarded_yaml, sourced_yaml, text_files
from selfheal.formats.durations import format_duration, parse_duration
from selfheal.formats.sourced_yaml import SourcedDocument, load_model, load_model_file, load_yaml

__all__ = [
    "SourcedDocument",
    "durations",
    "format_duration",
    "guarded_yaml",
    "load_model",
    "load_model_file",
    "load_yaml",
    "parse_duration",
    "sourced_yaml",
    "text_files",
]
