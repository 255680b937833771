"""`selfheal demo --replicas N` told as it happens: the team, the kill, the takeover, the result."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console

from selfheal.cli import events
from selfheal.lab import team_demo
from selfheal.lab.servers import ServerUnavailable


def run(console: Console, *, replicas: int, as_json: bool) -> None:
    """Run the team demo and print its story (or, with `as_json`, its result only)."""
    try:
        result = team_demo.run(replicas=replicas, tell=None if as_json else _teller(console))
    except ServerUnavailable as exc:
        console.print(f"[red]error:[/] cannot start the servers the team needs: {exc}")
        raise typer.Exit(code=2) from exc
    if as_json:
        print(json.dumps(result))
        return
    if not team_demo.succeeded(result):
        raise typer.Exit(code=1)


def _teller(console: Console) -> team_demo.Tell:
    def tell(event: dict[str, Any]) -> None:
        kind = event["kind"]
        if kind == "team":
            _print_team(console, event)
        elif kind == "audit":
            record = event["record"]
            line = events.describe(record["kind"], record["subject"], record["payload"])
            if line is not None:
                console.print(f"{event['at_s']:6.1f}s  {line}", highlight=False, soft_wrap=True)
        elif kind == "fault":
            console.print(f"{event['at_s']:6.1f}s  [bold red]{event['text']}[/]", soft_wrap=True)
        elif kind == "takeover":
            console.print(f"{event['at_s']:6.1f}s  [bold]{event['text']}[/]", soft_wrap=True)
        elif kind == "result":
            _print_result(console, event)
        else:
            console.print(
                f"{event['at_s']:6.1f}s  {event['text']}", highlight=False, soft_wrap=True
            )

    return tell


def _print_team(console: Console, event: dict[str, Any]) -> None:
    console.print(
        f"[bold]A team of {len(event['replicas'])} replicas[/] on {event['servers']} "
        f"PostgreSQL ({event['postgres']}) and NATS JetStream ({event['nats']}):",
        highlight=False,
        soft_wrap=True,
    )
    for replica in event["replicas"]:
        role = "  holds the loop lease (rules, watches, sweeps)" if replica["leader"] else ""
        console.print(
            f"  {replica['id']}  pid {replica['pid']}  API {replica['api']}{role}",
            highlight=False,
        )


def _print_result(console: Console, result: dict[str, Any]) -> None:
    writes = " then ".join(f"{n}" for n in result["scale_writes"]) or "none"
    console.print(
        f"\nIncident {result['incident']} ended [bold]{result['incident_state']}[/] although "
        f"{result['killed']} was killed in the middle of it; takeover {result['takeover_s']} s "
        f"(lease {result['lease_s']:g} s).",
        highlight=False,
        soft_wrap=True,
    )
    console.print(
        f"Scale writes to order-service: {writes}. Alerts lost: {result['alerts_lost']}. "
        f"Writes repeated: {result['duplicate_writes']}. Incidents left unfinished: "
        f"{result['stuck_incidents']}.",
        highlight=False,
        soft_wrap=True,
    )
