"""Incidents: alerts grouped by fingerprint, deduplicated, and moved through their lifecycle."""

from selfheal.incidents import intake
from selfheal.incidents.intake import (
    IncidentIntake,
    IncidentRepository,
    Intake,
    incident_key,
    target_of,
)

__all__ = ["IncidentIntake", "IncidentRepository", "Intake", "incident_key", "intake", "target_of"]
