"""The story `selfheal demo` prints for each incident, rendered from a real demo report."""

from __future__ import annotations

import io

from selfheal.cli import timeline
from selfheal.formats.durations import format_duration

from support import demo_report

STAGE_KEYS = ("onset_s", "detected_s", "decided_s", "action_s", "verified_s")


def test_each_incident_story_lists_its_stages_in_time_order() -> None:
    """An anomaly watch can open the incident before the ground-truth onset; read in order."""
    report = demo_report("--duration", "3m")
    out = io.StringIO()
    timeline.print_demo(timeline.report_console(out), report)
    blocks = out.getvalue().split("\n\n")

    assert report["incidents"]
    for incident in report["incidents"]:
        [block] = [b for b in blocks if f"(incident {incident['id']}," in b]
        stage_lines = [
            line for line in block.splitlines()[1:] if not line.strip().startswith("notified")
        ]
        times = [incident[key] for key in STAGE_KEYS if incident.get(key) is not None]
        if incident["waited_for"]:  # it waited for another's fix: told at its decision
            times.append(incident["decided_s"])
        times.sort()
        assert [line.split()[0] for line in stage_lines] == [format_duration(t) for t in times]
        onset = next(i for i, line in enumerate(stage_lines) if "trouble begins" in line)
        opened = next(i for i, line in enumerate(stage_lines) if "incident opened" in line)
        assert (onset < opened) == (incident["onset_s"] <= incident["detected_s"]), block
