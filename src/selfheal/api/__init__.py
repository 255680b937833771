"""selfheal's HTTP API (FastAPI): the receivers, incident reads and approvals, behind a door.

`create_app` builds the app from its ports (`AlertSink`, `SampleSink`, ...); `runtime`
implements them and `cli` serves the app with uvicorn. The API parses and validates only,
through `selfheal.telemetry.receivers`, and hands whole batches to the sinks. Every route
but the health checks needs a credential (`auth`), checked with the route's role by the
`guard` in front of the routes; `access` builds both from the config. `openapi` describes
the bodies and queries the routes read themselves, for `/openapi.json`.
"""

from selfheal.api import access, app, auth, guard, openapi, ports
from selfheal.api.app import create_app
from selfheal.api.ports import AlertSink, SampleSink

__all__ = [
    "AlertSink",
    "SampleSink",
    "access",
    "app",
    "auth",
    "create_app",
    "guard",
    "openapi",
    "ports",
]
