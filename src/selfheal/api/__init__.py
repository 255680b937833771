"""selfheal's HTTP API (FastAPI): the receivers other tools push alerts and telemetry to.

`create_app` builds the app from its ports (`AlertSink`, `SampleSink`); `runtime` wires them
to the controller and `cli` serves the app with uvicorn. The API parses and validates only,
through `selfheal.telemetry.receivers`, and hands whole batches to the sinks.
"""

from selfheal.api import app, ports
from selfheal.api.app import create_app
from selfheal.api.ports import AlertSink, SampleSink

__all__ = ["AlertSink", "SampleSink", "app", "create_app", "ports"]
