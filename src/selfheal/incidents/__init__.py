"""Incidents: alerts grouped by fingerprint, deduplicated, and moved through their lifecycle."""

from selfheal.incidents import intake
from selfheal.incidents.intake import IncidentIntake, IncidentRepository, Intake, target_of

__all__ = ["IncidentIntake", "IncidentRepository", "Intake", "intake", "target_of"]
