"""Three replicas on PostgreSQL and NATS, killed, paused and cut off: nothing lost or doubled.

A sample of `selfheal bench ha`. The module starts a PostgreSQL and a NATS server of its own
on free loopback ports, the twin, and three `selfheal run` replicas as processes, and runs
its trials one after another in that team. Each trial remediates order-service once while
something breaks, then counts from the twin's request log and the shared audit chain.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from selfheal.lab import ha_bench, servers
from selfheal.lab.ha_trials import KILL_MOMENTS, HaTrialResult, Trials
from selfheal.lab.ha_world import HaSettings, HaWorld
from selfheal.lab.servers import NatsServer, PostgresServer, ServerUnavailable

# The CI sample: every kill moment at least three times, 30 trials or more.
KILL_TRIALS = max(30, 3 * len(KILL_MOMENTS))


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trials]:
    root = tmp_path_factory.mktemp("ha")
    try:
        postgres = PostgresServer()
        nats = NatsServer(root / "nats")
    except ServerUnavailable as exc:
        pytest.skip(f"cannot start the servers the replicas share here: {exc}")
    with postgres, nats:
        # The world makes its database on the server: only once the server runs.
        world = HaWorld(root / "world", HaSettings(), postgres=postgres, nats=nats)
        with world:
            world.start_replicas()
            yield Trials(world, seed=17)


def assert_clean(result: HaTrialResult) -> None:
    """No alert lost, no write doubled, nothing unfinished, no replica died on its own."""
    assert ha_bench.verdict(result).startswith("ok"), f"{result.detail}: {ha_bench.verdict(result)}"


def test_thirty_kills_of_the_working_replica_lose_nothing_and_repeat_no_write(
    team: Trials,
) -> None:
    """SIGKILL at every stage of a remediation in turn: the others finish each one."""
    results = [team.kill(KILL_MOMENTS[index % len(KILL_MOMENTS)]) for index in range(KILL_TRIALS)]
    failures = [
        f"{r.detail}: {ha_bench.verdict(r)}"
        for r in results
        if not ha_bench.verdict(r).startswith("ok")
    ]
    assert not failures, "\n".join(failures)
    assert all(r.extra["moment_reached"] for r in results)
    lease = team.world.lease_wall_s
    takeovers = [r.takeover_s for r in results if r.takeover_s is not None]
    assert len(takeovers) == len(results)
    # Within two lease periods, by the database's record of the fencing (and the lease).
    assert max(takeovers) <= 2 * lease, takeovers
    # The leader was among the killed at least once: the loop's lease passed on too.
    assert any(r.extra["was_leader"] for r in results)
    report = ha_bench.report(results, storm=None, throughput=[], lease_s=lease, wall_s=1.0)
    assert report["kill_trials"] == KILL_TRIALS
    assert report["alerts_sent"] == KILL_TRIALS
    assert (report["alerts_lost"], report["duplicate_writes"]) == (0, 0)
    assert report["unfinished_incidents"] == 0
    assert report["takeover_s_max"] == max(takeovers)


@pytest.mark.parametrize("moment", ["scale.begun", "wait.completed"])
def test_a_replica_paused_past_its_lease_is_fenced_and_stops_when_it_wakes(
    team: Trials, moment: str
) -> None:
    """SIGSTOP mid-remediation: the others take over; on SIGCONT it acts no more and exits."""
    result = team.pause(moment)
    assert_clean(result)
    assert result.extra["woke_and_stopped"], result.extra
    assert result.takeover_s is not None
    assert result.takeover_s <= 2 * team.world.lease_wall_s


def test_nats_restarted_in_the_middle_of_a_storm_loses_no_acknowledged_alert(
    team: Trials,
) -> None:
    result = team.nats_restart(alerts=1000)
    assert_clean(result)
    assert result.alerts_sent == 1000
    assert result.accounts.alerts_lost == 0


@pytest.mark.parametrize("moment", ["decision.recorded", "scale.begun", "wait.completed"])
def test_postgres_crashed_in_the_middle_of_a_remediation_leaves_nothing_unfinished(
    team: Trials, moment: str
) -> None:
    """The database goes away under every replica; when it is back, the run finishes once."""
    result = team.postgres_restart(moment)
    assert_clean(result)
    assert result.extra["moment_reached"]


def test_the_webhook_of_any_replica_stores_every_alert_it_acknowledges(team: Trials) -> None:
    """A small throughput run over all three replicas: every alert taken, none refused."""
    world = team.world
    measured = ha_bench.measure_intake(world.api_urls(), alerts=500, token=world.credentials.sender)
    assert measured["alerts"] == 500
    assert measured["p99_ms"] is not None


def test_the_bench_plan_kills_at_every_moment_then_pauses_and_restarts_each_server() -> None:
    plan = ha_bench.plan_trials(len(KILL_MOMENTS) + 1, pauses=None, restarts=1)
    kills = [moment for kind, moment in plan if kind == "kill"]
    assert set(kills) == set(KILL_MOMENTS)
    assert [kind for kind, _ in plan if kind != "kill"] == [
        "pause",
        "nats-restart",
        "postgres-restart",
    ]


def test_a_fresh_machine_without_postgres_binaries_gets_a_reason_not_a_crash(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With neither Debian's directory nor PATH holding pg_ctl, the reason names the fix."""
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(servers, "_DEBIAN_POSTGRES", tmp_path / "none")
    with pytest.raises(ServerUnavailable, match="apt install postgresql"):
        servers.find_postgres_bin()
