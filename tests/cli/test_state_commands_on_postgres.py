"""The state commands on a team's shared PostgreSQL: `--config` with `state.url` is enough.

Replicas keep their incidents and audit chain in one database, not in a state directory; an
operator who points `incidents`, `audit` or `approve` at the team's config must read and
write that database, whichever directory they stand in.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from selfheal.lab.servers import ExistingPostgres
from selfheal.runtime.settings import load_settings

from support import example_config, populated_state, selfheal


def ha_config(tmp_path: Path, **overrides: object) -> Path:
    """examples/ha's config copied into `tmp_path`, with a kubeconfig file of its own there.

    The example names the one `selfheal twin` writes; these commands never reach the cluster.
    """
    kubeconfig = tmp_path / "twin.kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n", encoding="utf-8")
    return example_config(tmp_path, "ha", cluster={"kubeconfig": str(kubeconfig)}, **overrides)


@pytest.fixture
def shared_database() -> Iterator[str]:
    """A fresh database on the machine's PostgreSQL, dropped afterwards."""
    server = ExistingPostgres()
    if not server.reachable():
        pytest.skip("PostgreSQL is not reachable at 127.0.0.1:5432 (CI starts it)")
    name = f"selfheal_cli_{uuid.uuid4().hex[:10]}"
    url = server.create_database(name)
    try:
        yield url
    finally:
        server.drop_database(name)


def test_incidents_and_audit_read_the_replicas_database_named_by_the_config(
    tmp_path: Path, shared_database: str
) -> None:
    """No state.db anywhere: the commands open `state.url` and read what the team wrote."""
    ids = populated_state(tmp_path / "unused", url=shared_database)
    config = ha_config(tmp_path, state={"url": shared_database})
    assert not (tmp_path / "state" / "state.db").exists()

    listed = selfheal("incidents", "list", "--config", str(config), "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert [item["id"] for item in json.loads(listed.stdout)] == [ids["fixed"], ids["other"]]

    shown = selfheal("incidents", "show", ids["fixed"], "--config", str(config))
    assert shown.returncode == 0, shown.stderr
    assert "step scale (kubernetes.scale): succeeded" in shown.stdout

    log = selfheal("audit", "log", "--incident", ids["fixed"], "--config", str(config), "--json")
    assert log.returncode == 0, log.stderr
    assert json.loads(log.stdout)[0]["kind"] == "incident.opened"

    verified = selfheal("audit", "verify", "--config", str(config))
    assert verified.returncode == 0, verified.stderr
    assert "audit chain intact" in verified.stdout


def test_an_unreachable_team_database_is_a_clear_error_not_a_traceback(tmp_path: Path) -> None:
    """A wrong port in `state.url` names the database and exits 2."""
    config = ha_config(tmp_path, state={"url": "postgresql+psycopg://postgres@127.0.0.1:1/x"})
    result = selfheal("incidents", "list", "--config", str(config))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "127.0.0.1:1" in result.stderr or "connect" in result.stderr.lower()


def test_the_ha_example_config_is_valid_and_shares_its_state_and_bus(tmp_path: Path) -> None:
    """examples/ha/selfheal.yaml loads, names files that exist, and sets up a team."""
    settings = load_settings(ha_config(tmp_path))
    assert settings.state.shared
    assert settings.state.url is not None
    assert settings.state.url.startswith("postgresql")
    assert settings.bus.kind == "nats"
    assert settings.replica.lease > settings.replica.heartbeat
    for path in (settings.policies, settings.runbooks, settings.guardrails, *settings.rules):
        assert path is not None
        assert settings.path(path).exists(), path
