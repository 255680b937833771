"""`selfheal rbac` and `selfheal policy lint --role`, run as a user runs them: a subprocess."""

from __future__ import annotations

import shutil
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from selfheal.domain.errors import ConfigError
from selfheal.runtime import controller
from selfheal.workflows import load_runbooks

from support import EXAMPLES, selfheal

EXAMPLE = EXAMPLES / "flash-sale"
RUNBOOKS = EXAMPLE / "runbooks"
# The newest Kubernetes whose schemas kubernetes-validate ships.
KUBERNETES_VERSION = kubernetes_validate.latest_version()


def objects(text: str) -> list[dict]:
    return [document for document in yaml.safe_load_all(text) if document is not None]


def test_rbac_prints_a_service_account_role_and_binding_that_validate() -> None:
    """Three objects in the namespace given, each valid for the API server (strict)."""
    result = selfheal("rbac", "--runbooks", str(RUNBOOKS), "--namespace", "shop", "--name", "sh")
    assert result.returncode == 0, result.stderr
    found = objects(result.stdout)
    assert [(o["kind"], o["metadata"]["name"], o["metadata"]["namespace"]) for o in found] == [
        ("ServiceAccount", "sh", "shop"),
        ("Role", "sh", "shop"),
        ("RoleBinding", "sh", "shop"),
    ]
    binding = found[2]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "sh",
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "sh", "namespace": "shop"}]
    for manifest in found:
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    assert "#   scale-up/scale (kubernetes.scale): get deployments (group apps), patch " in (
        result.stdout
    )


def test_cluster_wide_gives_a_cluster_role_bound_to_the_namespaced_account() -> None:
    """The same rules in every namespace; the ServiceAccount still lives in one."""
    result = selfheal("rbac", "--runbooks", str(RUNBOOKS), "--cluster-wide")
    assert result.returncode == 0, result.stderr
    account, role, binding = objects(result.stdout)
    assert account["metadata"]["namespace"] == "selfheal"
    assert (role["kind"], binding["kind"]) == ("ClusterRole", "ClusterRoleBinding")
    assert "namespace" not in role["metadata"]
    assert "namespace" not in binding["metadata"]
    assert binding["subjects"][0]["namespace"] == "selfheal"
    for manifest in (account, role, binding):
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)


def test_out_writes_what_stdout_would_and_the_same_runbooks_give_the_same_bytes(
    tmp_path: Path,
) -> None:
    """Deterministic output, so a committed Role can be checked to be up to date."""
    printed = selfheal("rbac", "--runbooks", str(RUNBOOKS))
    written = selfheal("rbac", "--runbooks", str(RUNBOOKS), "--out", str(tmp_path / "role.yaml"))
    assert (printed.returncode, written.returncode, written.stdout) == (0, 0, "")
    assert (tmp_path / "role.yaml").read_text(encoding="utf-8") == printed.stdout


def test_a_bad_runbook_is_refused_as_the_loader_refuses_it_and_nothing_is_written(
    tmp_path: Path,
) -> None:
    """The loader's file:line:col error, exit 2, and no --out file."""
    shutil.copytree(RUNBOOKS, tmp_path / "runbooks")
    broken = tmp_path / "runbooks" / "scale-up.yaml"
    broken.write_text(
        broken.read_text(encoding="utf-8").replace("type: kubernetes.scale", "type: k8s.scale"),
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as loader_error:
        load_runbooks(tmp_path / "runbooks", step_types=controller.step_types())
    out = tmp_path / "role.yaml"
    result = selfheal("rbac", "--runbooks", str(tmp_path / "runbooks"), "--out", str(out))
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"error: {loader_error.value}\n"
    assert str(broken) + ":21:11 (steps[1].type): unknown step type 'k8s.scale'" in result.stderr
    assert not out.exists()


def test_a_bad_name_is_refused_naming_the_option() -> None:
    """Kubernetes names are checked before anything is printed."""
    result = selfheal("rbac", "--runbooks", str(RUNBOOKS), "--name", "Self_Heal")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.startswith("error: --name: 'Self_Heal' is not a valid Kubernetes name")


def test_policy_lint_passes_runbooks_the_generated_role_allows(tmp_path: Path) -> None:
    """The Role `selfheal rbac` writes allows every step it was made from."""
    role = tmp_path / "role.yaml"
    assert selfheal("rbac", "--runbooks", str(RUNBOOKS), "--out", str(role)).returncode == 0
    result = selfheal("policy", "lint", str(EXAMPLE / "policies"), "--role", str(role))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == (
        "ok: 1 policy files, 1 plans checked, 9 runbook steps checked against Role selfheal\n"
    )


def test_policy_lint_fails_a_runbook_whose_step_the_deployed_role_does_not_allow(
    tmp_path: Path,
) -> None:
    """A Role that reads deployments but cannot scale them fails both scaling steps.

    Each is named at its file:line with its id, its type and the verb and resource it lacks.
    """
    role = tmp_path / "role.yaml"
    role.write_text(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\n"
        "metadata: {name: reader, namespace: production}\n"
        "rules:\n- {apiGroups: [apps], resources: [deployments], verbs: [get, list, watch]}\n",
        encoding="utf-8",
    )
    result = selfheal("policy", "lint", str(EXAMPLE / "policies"), "--role", str(role))
    assert result.returncode == 1, result.stderr
    runbook = RUNBOOKS / "scale-up.yaml"
    where = f"Role reader ({role}:2:7)"
    assert result.stdout.splitlines() == [
        (
            f"{runbook}:20:5 (steps[1]): step 'scale' (kubernetes.scale) needs patch "
            f"deployments/scale (group apps), which {where} does not allow"
        ),
        (
            f"{runbook}:62:5 (compensation[0]): step 'rollback' (kubernetes.restore_replicas) "
            f"needs patch deployments/scale (group apps), which {where} does not allow"
        ),
        (
            "2 problems in 1 policy files, 1 plans checked, 9 runbook steps checked against "
            "Role reader"
        ),
    ]


def test_policy_lint_with_a_role_file_that_holds_no_role_exits_2(tmp_path: Path) -> None:
    """The file is named; nothing is checked."""
    role = tmp_path / "account.yaml"
    role.write_text("apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: x}\n", "utf-8")
    result = selfheal("policy", "lint", str(EXAMPLE / "policies"), "--role", str(role))
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        f"error: {role}: no Role or ClusterRole in this file (`selfheal rbac` writes one)\n"
    )
