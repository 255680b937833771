"""The Role a runbooks directory needs, and the check of runbooks against a deployed Role."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from selfheal.actions import bookkeeping, kubernetes_actions, permissions
from selfheal.actions.kubernetes_client import KubernetesCluster
from selfheal.actions.permissions import READ_DEPLOYMENT, SCALE_DEPLOYMENT, ApiAccess
from selfheal.domain.actions import ActionSpec, Invocation
from selfheal.domain.errors import ConfigError
from selfheal.domain.time import ScaledClock
from selfheal.lab.fault_proxy import FaultProxy, FaultRule
from selfheal.runtime import controller, rbac, role_check
from selfheal.workflows import load_runbooks

from support import EXAMPLES, RunningTwin

RUNBOOKS = EXAMPLES / "flash-sale" / "runbooks"
TARGET = {"namespace": "production", "deployment": "order-service"}
_VERBS = {"GET": "get", "PATCH": "patch", "PUT": "update", "POST": "create", "DELETE": "delete"}


class Memo:
    """The durable memo as a dict."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str], Any] = {}

    def recall(self, key: str, name: str) -> Any:
        return self.values.get((key, name))

    def recall_all(self, key: str) -> dict[str, Any]:
        return {name: value for (owner, name), value in self.values.items() if owner == key}

    def remember(self, key: str, name: str, value: Any, *, kind: str, at: float) -> None:
        self.values[key, name] = value


class Ports:
    """The notifier and the budget, answering as a real store would for one charged run."""

    def notify(self, **_: Any) -> str:
        return "n-1"

    def charged(self, *, key: str) -> float | None:
        return 1.0

    def refund(self, **_: Any) -> float:
        return 1.0


def run_step(spec: ActionSpec, params: Mapping[str, Any], memo: Memo) -> None:
    clock = ScaledClock(speed=60.0)
    spec.run(
        params,
        Invocation(
            workflow_id="wf",
            runbook="scale-up",
            step_id="scale",
            step_type=spec.step_type.name,
            attempt=1,
            deadline=clock.now() + 60.0,
            clock=clock,
            incident={"id": "inc"},
            memo=memo,
        ),
    )


def access_of_request(method: str, path: str) -> ApiAccess:
    """The RBAC verb and resource the API server checks for a request (no collections here)."""
    parts = path.strip("/").split("/")
    group, rest = ("", parts[2:]) if parts[0] == "api" else (parts[1], parts[3:])
    assert rest[0] == "namespaces", path
    resource = "/".join([rest[2], *rest[4:]])
    return ApiAccess(group, resource, _VERBS[method])


def test_every_step_type_the_controller_runs_declares_its_access() -> None:
    """The table has a row for each step type, and no row for a step type that is gone."""
    assert set(permissions.STEP_ACCESS) == set(controller.step_types())


@pytest.mark.parametrize(
    ("make", "params"),
    [
        (kubernetes_actions.scale_action, {**TARGET, "replicas": 6}),
        (kubernetes_actions.wait_available_action, {**TARGET, "replicas": 0}),
        (kubernetes_actions.restore_replicas_action, TARGET),
        (lambda cluster: bookkeeping.budget_refund_action(Ports(), cluster), TARGET),
        (
            lambda cluster: bookkeeping.notify_action(Ports(), cluster),
            {"message": "hi", "state_of": "production/order-service"},
        ),
        (lambda cluster: bookkeeping.notify_action(Ports(), cluster), {"message": "hi"}),
    ],
    ids=[
        "scale",
        "wait_available",
        "restore_replicas",
        "budget.refund",
        "notify+state_of",
        "notify",
    ],
)
def test_what_a_step_declares_is_what_it_calls_on_the_api(
    twin: RunningTwin, make: Any, params: dict[str, Any]
) -> None:
    """Every request a step sends, as the API server's RBAC sees it, is declared.

    And each declared access is used (a restore after a scale changes replicas back).
    """
    memo = Memo()
    memo.values["wf/scale", "previous_replicas"] = 2  # a scale step ran before
    everything = FaultRule(path=".*", action="delay", delay_s=0.0, times=None)
    with FaultProxy(twin.url, rules=[everything]) as proxy:
        cluster = KubernetesCluster(host=proxy.url)
        spec = make(cluster)
        if spec.step_type.name == "kubernetes.restore_replicas":
            KubernetesCluster(host=twin.url).scale("production", "order-service", 5)
        run_step(spec, params, memo)
        called = {access_of_request(entry["method"], entry["path"]) for entry in proxy.injected}
    declared = permissions.access_of(spec.step_type.name, params)
    assert called == declared


def test_rules_are_one_per_group_and_verbs_in_a_stable_order() -> None:
    """However the steps come, the same rules in the same order.

    No verb spreads to a resource that does not need it.
    """
    accesses = [
        READ_DEPLOYMENT,
        SCALE_DEPLOYMENT,
        ApiAccess("apps", "statefulsets", "get"),
        ApiAccess("", "pods", "delete"),
        ApiAccess("", "pods", "get"),
    ]
    expected = [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["delete", "get"]},
        {"apiGroups": ["apps"], "resources": ["deployments", "statefulsets"], "verbs": ["get"]},
        {"apiGroups": ["apps"], "resources": ["deployments/scale"], "verbs": ["patch"]},
    ]
    for order in itertools.permutations(accesses):
        assert rbac.policy_rules(order) == expected


def test_the_example_runbooks_need_a_deployment_read_and_the_scale_subresource() -> None:
    """No write to the Deployment itself: its image and command stay out of reach."""
    runbooks = load_runbooks(RUNBOOKS, step_types=controller.step_types())
    role = rbac.manifests(runbooks)[1]
    assert role["kind"] == "Role"
    assert role["rules"] == [
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]},
        {"apiGroups": ["apps"], "resources": ["deployments/scale"], "verbs": ["patch"]},
    ]


def write_role(path: Path, rules: str, *, extra: str = "") -> Path:
    path.write_text(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: selfheal}\n---\n"
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\n"
        f"metadata: {{name: deployed, namespace: production}}\nrules:\n{rules}{extra}",
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize(
    ("rules", "allowed"),
    [
        ("- {apiGroups: [apps], resources: [deployments/scale], verbs: [patch]}\n", True),
        ("- {apiGroups: ['*'], resources: [deployments/scale], verbs: [patch]}\n", True),
        ("- {apiGroups: [apps], resources: ['*'], verbs: [patch]}\n", True),
        ("- {apiGroups: [apps], resources: ['*/scale'], verbs: [patch]}\n", True),
        ("- {apiGroups: [apps], resources: [deployments/scale], verbs: ['*']}\n", True),
        ("- {apiGroups: [apps], resources: [deployments], verbs: [patch]}\n", False),
        ("- {apiGroups: [apps], resources: ['deployments/*'], verbs: [patch]}\n", False),
        ("- {apiGroups: [''], resources: [deployments/scale], verbs: [patch]}\n", False),
        ("- {apiGroups: [apps], resources: [deployments/scale], verbs: [update]}\n", False),
        (
            (
                "- {apiGroups: [apps], resources: [deployments/scale], verbs: [patch],"
                " resourceNames: [order-service]}\n"
            ),
            False,
        ),
    ],
)
def test_wildcards_count_as_the_api_server_counts_them_and_names_never_do(
    tmp_path: Path, rules: str, *, allowed: bool
) -> None:
    """`*` in groups, resources (subresources too) and verbs, and `*/scale`, allow.

    A rule limited to resourceNames does not: a runbook's target is known only when it runs.
    """
    role = role_check.load_role(write_role(tmp_path / "role.yaml", rules))
    assert role.allows(SCALE_DEPLOYMENT) is allowed


def test_a_refusal_names_the_step_its_type_and_what_is_missing(tmp_path: Path) -> None:
    """Each step the Role does not allow is one refusal at the step's file:line:col."""
    rules = "- {apiGroups: [apps], resources: [deployments], verbs: [get]}\n"
    role = role_check.load_role(write_role(tmp_path / "role.yaml", rules))
    runbooks = load_runbooks(RUNBOOKS, step_types=controller.step_types())
    refused = [str(refusal) for refusal in role_check.refusals(role, runbooks)]
    runbook = RUNBOOKS / "scale-up.yaml"
    where = f"Role deployed ({tmp_path / 'role.yaml'}:6:7)"
    assert refused == [
        (
            f"{runbook}:20:5 (steps[1]): step 'scale' (kubernetes.scale) needs patch "
            f"deployments/scale (group apps), which {where} does not allow"
        ),
        (
            f"{runbook}:62:5 (compensation[0]): step 'rollback' (kubernetes.restore_replicas) "
            f"needs patch deployments/scale (group apps), which {where} does not allow"
        ),
    ]


def test_a_file_without_exactly_one_role_is_refused_by_name(tmp_path: Path) -> None:
    """No Role, or two, is a ConfigError naming the file (and each Role's line)."""
    empty = tmp_path / "none.yaml"
    empty.write_text("apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: x}\n", "utf-8")
    with pytest.raises(ConfigError, match=r"none\.yaml: no Role or ClusterRole in this file"):
        role_check.load_role(empty)
    second = "---\nkind: ClusterRole\nmetadata: {name: other}\nrules: []\n"
    two = write_role(tmp_path / "two.yaml", "  []\n", extra=second)
    with pytest.raises(ConfigError, match=r"2 Roles in this file \(.*two\.yaml:6:7, .*:11:7\)"):
        role_check.load_role(two)


def test_a_malformed_rule_is_refused_at_its_line(tmp_path: Path) -> None:
    """A rule without verbs is named at file:line:col with its path in the Role."""
    path = write_role(tmp_path / "role.yaml", "- apiGroups: [apps]\n  resources: [pods]\n")
    with pytest.raises(ConfigError) as caught:
        role_check.load_role(path)
    assert str(caught.value) == f"{path}:9:3 (rules[0].verbs): required field is missing"
