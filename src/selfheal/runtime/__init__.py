"""The composition root: settings, and the controller wired from every stage's package."""

from selfheal.runtime import controller, recorder, report, settings, telemetry_store
from selfheal.runtime.controller import Controller
from selfheal.runtime.settings import Settings, load_settings

__all__ = [
    "Controller",
    "Settings",
    "controller",
    "load_settings",
    "recorder",
    "report",
    "settings",
    "telemetry_store",
]
