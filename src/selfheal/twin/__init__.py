"""The digital twin: a simulated Kubernetes e-commerce platform reached over HTTP.

It speaks a Kubernetes API subset (for kubectl and the official clients) and Prometheus
exposition on one port, runs scenarios of load and faults on a scenario clock, and reports
what happened. docs/twin.md describes the model and its equations. Only the CLI and tests
import this package; everything else reaches the twin over the wire.
"""

from selfheal.twin import report, scenario, server, simulation
from selfheal.twin.scenario import Scenario
from selfheal.twin.server import Twin, TwinServer, serving
from selfheal.twin.simulation import Simulation

__all__ = [
    "Scenario",
    "Simulation",
    "Twin",
    "TwinServer",
    "report",
    "scenario",
    "server",
    "serving",
    "simulation",
]
