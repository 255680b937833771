"""`selfheal demo --replicas N`: a team heals the twin while the replica doing it is killed."""

from __future__ import annotations

import json

from support import selfheal


def test_a_team_of_two_finishes_the_remediation_of_the_replica_killed_in_its_scale_step() -> None:
    """The killed replica's workflow ends verified, with one scale write and nothing lost."""
    result = selfheal("demo", "--replicas", "2", "--json", timeout=600)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["replicas"] == 2
    assert report["incident_state"] == "verified"
    assert report["scale_writes"] == [5]
    assert (report["alerts_lost"], report["duplicate_writes"], report["stuck_incidents"]) == (
        0,
        0,
        0,
    )
    assert report["takeover_s"] is not None
    assert report["takeover_s"] <= 2 * report["lease_s"]


def test_a_team_needs_two_to_nine_replicas() -> None:
    for count in ("1", "10"):
        result = selfheal("demo", "--replicas", count)
        assert result.returncode == 2
        assert "--replicas" in result.stderr
