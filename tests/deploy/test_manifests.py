"""deploy/: the Kustomize base and overlays as the real `kubectl kustomize` renders them.

Every object of every rendering is valid for the API server (kubernetes-validate, strict),
every container is locked down (and the check of that would see any setting removed), the
committed Role is what `selfheal rbac` makes of the example runbooks, and the config the
pod mounts is a valid selfheal config whose files are where the mounts put them.
"""

from __future__ import annotations

import copy
import filecmp
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from selfheal.api import access
from selfheal.api.auth import new_token, token_digest
from selfheal.domain.errors import ConfigError
from selfheal.runtime.settings import load_settings

from support import EXAMPLES, kubectl_binary, selfheal

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
RENDERINGS = {
    "base": DEPLOY / "base",
    "embedded": DEPLOY / "overlays" / "embedded",
    "replicas": DEPLOY / "overlays" / "replicas",
}
# The newest Kubernetes whose schemas kubernetes-validate ships.
KUBERNETES_VERSION = kubernetes_validate.latest_version()
API_PORT = 9095
CONFIG_PATH = "/etc/selfheal/selfheal.yaml"
USER_ID = 10001


def render(directory: Path) -> list[dict[str, Any]]:
    result = subprocess.run(
        [kubectl_binary(), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [item for item in yaml.safe_load_all(result.stdout) if item is not None]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {name: render(directory) for name, directory in RENDERINGS.items()}


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [item for item in objects if item["kind"] == kind]


def the(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = of_kind(objects, kind)
    return found


def containers(pod: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from pod.get("initContainers", [])
    yield from pod["containers"]


# --- What every container must have, and a check that sees each one go.


def lockdown_problems(pod: dict[str, Any]) -> list[str]:
    """What a pod spec lacks of the security settings deploy/ promises (empty: none)."""
    problems = []
    pod_context = pod.get("securityContext", {})
    for container in containers(pod):
        name = container["name"]
        context = container.get("securityContext", {})

        def setting(key: str, context: dict[str, Any] = context) -> Any:
            return context.get(key, pod_context.get(key))

        if setting("runAsNonRoot") is not True:
            problems.append(f"{name}: runAsNonRoot is not true")
        if not isinstance(setting("runAsUser"), int) or setting("runAsUser") == 0:
            problems.append(f"{name}: no non-root runAsUser")
        if context.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{name}: the root filesystem is writable")
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: privilege escalation is not refused")
        capabilities = context.get("capabilities", {})
        if "ALL" not in capabilities.get("drop", []) or capabilities.get("add"):
            problems.append(f"{name}: capabilities are not all dropped")
        if (setting("seccompProfile") or {}).get("type") != "RuntimeDefault":
            problems.append(f"{name}: no RuntimeDefault seccomp profile")
        resources = container.get("resources", {})
        problems.extend(
            f"{name}: no cpu and memory {bound}"
            for bound in ("requests", "limits")
            if not {"cpu", "memory"} <= set(resources.get(bound, {}))
        )
    return problems


def drop(path: str) -> Callable[[dict[str, Any]], None]:
    """Remove one setting (a dotted path below the first container) from a pod spec."""

    def edit(pod: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        holder = pod["containers"][0]
        for part in parents:
            holder = holder[part]
        del holder[last]
        # A setting the pod level would still give each container is gone from there too.
        pod.get("securityContext", {}).pop(last, None)

    return edit


REMOVALS = [
    "securityContext.runAsNonRoot",
    "securityContext.runAsUser",
    "securityContext.readOnlyRootFilesystem",
    "securityContext.allowPrivilegeEscalation",
    "securityContext.capabilities",
    "securityContext.seccompProfile",
    "resources.limits",
    "resources.requests",
]


@pytest.mark.parametrize("name", sorted(RENDERINGS))
def test_every_object_is_valid_for_the_api_server(
    rendered: dict[str, list[dict[str, Any]]], name: str
) -> None:
    """Strict validation: unknown fields, wrong types and missing required fields fail."""
    for item in rendered[name]:
        kubernetes_validate.validate(item, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("name", sorted(RENDERINGS))
def test_every_container_is_locked_down(
    rendered: dict[str, list[dict[str, Any]]], name: str
) -> None:
    """Non-root, read-only root, no escalation, no capabilities, seccomp, bounded resources."""
    deployments = of_kind(rendered[name], "Deployment")
    assert deployments
    for deployment in deployments:
        assert lockdown_problems(deployment["spec"]["template"]["spec"]) == []


@pytest.mark.parametrize("removed", REMOVALS)
def test_the_lockdown_check_sees_each_setting_removed(
    rendered: dict[str, list[dict[str, Any]]], removed: str
) -> None:
    """The check above is not vacuous: without any one of the settings, it fails."""
    pod = copy.deepcopy(the(rendered["base"], "Deployment")["spec"]["template"]["spec"])
    drop(removed)(pod)
    assert lockdown_problems(pod) != []


def test_the_pod_runs_as_the_images_user_and_mounts_the_images_config_path(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    """The Dockerfile's user and default config path are the ones the manifests use."""
    pod = the(rendered["base"], "Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["securityContext"]["runAsUser"] == USER_ID
    assert container["args"][:3] == ["run", "--config", CONFIG_PATH]
    mounted = {mount["mountPath"] for mount in container["volumeMounts"]}
    assert CONFIG_PATH in mounted
    assert pod["serviceAccountName"] == the(rendered["base"], "ServiceAccount")["metadata"]["name"]


def test_probes_ask_the_api_for_health_and_readiness(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    """Liveness on /healthz, readiness on /readyz, both on the API's port."""
    (container,) = the(rendered["base"], "Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["ports"] == [{"name": "api", "containerPort": API_PORT, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["port"] == "api"


# --- The Role, the network, the overlays.


def test_the_committed_role_is_what_selfheal_rbac_makes_of_the_example_runbooks() -> None:
    """Regenerated as the kustomization says; a runbook change without a new Role fails."""
    result = selfheal("rbac", "--runbooks", str(EXAMPLES / "flash-sale" / "runbooks"))
    assert result.returncode == 0, result.stderr
    committed = (DEPLOY / "base" / "rbac.yaml").read_text(encoding="utf-8")
    assert committed == result.stdout, (
        "deploy/base/rbac.yaml is out of date: selfheal rbac --runbooks "
        "examples/flash-sale/runbooks --out deploy/base/rbac.yaml"
    )


def test_the_mounted_example_files_are_the_examples(tmp_path: Path) -> None:
    """deploy/base/flash-sale holds copies (kustomize reads below its root only): the same."""
    copies = DEPLOY / "base" / "flash-sale"
    for path in sorted(copies.rglob("*")):
        if path.is_file():
            original = EXAMPLES / "flash-sale" / path.relative_to(copies)
            assert filecmp.cmp(path, original, shallow=False), f"{path} differs from {original}"


@pytest.mark.parametrize("name", sorted(RENDERINGS))
def test_the_rendered_role_allows_every_step_of_the_mounted_runbooks(
    rendered: dict[str, list[dict[str, Any]]], name: str, tmp_path: Path
) -> None:
    """`policy lint --role` passes the whole rendering: its one Role allows each step."""
    manifest = tmp_path / "rendered.yaml"
    manifest.write_text(yaml.safe_dump_all(rendered[name]), encoding="utf-8")
    copies = DEPLOY / "base" / "flash-sale"
    result = selfheal(
        "policy",
        "lint",
        str(copies / "policies"),
        "--runbooks",
        str(copies / "runbooks"),
        "--role",
        str(manifest),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "runbook steps checked against Role selfheal" in result.stdout


def test_network_policy_lets_in_only_the_api_and_out_only_what_the_config_needs(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    """Ingress: the API port alone. Egress: DNS, the Kubernetes API and Prometheus.

    The replicas add PostgreSQL and NATS.
    """

    def egress_ports(objects: list[dict[str, Any]]) -> set[int]:
        policy = the(objects, "NetworkPolicy")["spec"]
        assert policy["policyTypes"] == ["Ingress", "Egress"]
        assert policy["ingress"] == [{"ports": [{"protocol": "TCP", "port": API_PORT}]}]
        return {port["port"] for rule in policy["egress"] for port in rule["ports"]}

    assert egress_ports(rendered["base"]) == {53, 443, 6443, 9090}
    assert egress_ports(rendered["embedded"]) == {53, 443, 6443, 9090}
    assert egress_ports(rendered["replicas"]) == {53, 443, 6443, 9090, 5432, 4222}


def test_no_rendering_holds_a_secret_value(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """Secrets are referenced by name, never shipped: no Secret object, no literal password."""
    for objects in rendered.values():
        assert of_kind(objects, "Secret") == []
    (container,) = the(rendered["replicas"], "Deployment")["spec"]["template"]["spec"]["containers"]
    password = next(item for item in container["env"] if item["name"] == "PGPASSWORD")
    assert password == {
        "name": "PGPASSWORD",
        "valueFrom": {"secretKeyRef": {"name": "selfheal-postgres", "key": "password"}},
    }
    for name, objects in rendered.items():
        (container,) = the(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
        tokens = next(item for item in container["env"] if item["name"] == "SELFHEAL_API_TOKENS")
        assert tokens == {
            "name": "SELFHEAL_API_TOKENS",
            "valueFrom": {"secretKeyRef": {"name": "selfheal-api-tokens", "key": "tokens.yaml"}},
        }, name


def test_embedded_is_one_controller_on_a_lasting_volume(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    """One replica, the old pod stopped before the new one starts, state on a claim."""
    deployment = the(rendered["embedded"], "Deployment")["spec"]
    assert deployment["replicas"] == 1
    assert deployment["strategy"] == {"type": "Recreate"}
    volumes = {volume["name"]: volume for volume in deployment["template"]["spec"]["volumes"]}
    claim = the(rendered["embedded"], "PersistentVolumeClaim")["metadata"]["name"]
    assert volumes["state"] == {"name": "state", "persistentVolumeClaim": {"claimName": claim}}


def test_replicas_are_several_on_postgresql_and_nats(
    rendered: dict[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    """Several replicas, a disruption budget, and a config whose state and bus are shared."""
    assert the(rendered["replicas"], "Deployment")["spec"]["replicas"] >= 2
    assert the(rendered["replicas"], "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    settings = load_settings(lay_out_mounts(rendered["replicas"], tmp_path))
    assert settings.state.shared
    assert settings.bus.kind == "nats"


# --- The config the pod reads, laid out as the mounts lay it out.


def lay_out_mounts(objects: list[dict[str, Any]], root: Path) -> Path:
    """Write each mounted ConfigMap where the container sees it, below `root`; the config."""
    maps = {item["metadata"]["name"]: item["data"] for item in of_kind(objects, "ConfigMap")}
    pod = the(objects, "Deployment")["spec"]["template"]["spec"]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    (container,) = pod["containers"]
    for mount in container["volumeMounts"]:
        source = volumes[mount["name"]].get("configMap")
        if source is None:
            continue
        data = maps[source["name"]]
        target = root / mount["mountPath"].lstrip("/")
        if "subPath" in mount:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(data[mount["subPath"]], encoding="utf-8")
            continue
        target.mkdir(parents=True, exist_ok=True)
        for key, text in data.items():
            (target / key).write_text(text, encoding="utf-8")
    return root / CONFIG_PATH.lstrip("/")


@pytest.mark.parametrize("name", sorted(RENDERINGS))
def test_the_mounted_config_is_valid_and_finds_its_files(
    rendered: dict[str, list[dict[str, Any]]], name: str, tmp_path: Path
) -> None:
    """The config and its rules, policies, runbooks and guardrails, as mounted, are valid.

    It uses the pod's service account and listens where the probes and the Service knock.
    """
    settings = load_settings(lay_out_mounts(rendered[name], tmp_path))
    assert settings.cluster.in_cluster
    assert settings.twin is None
    assert settings.api is not None
    assert settings.api.listen == f"0.0.0.0:{API_PORT}"
    assert "localhost" in settings.api.hosts()
    state = the(rendered[name], "Deployment")["spec"]["template"]["spec"]["containers"][0]
    state_mount = next(m for m in state["volumeMounts"] if m["name"] == "state")
    assert settings.state_dir.is_relative_to(state_mount["mountPath"])


@pytest.mark.parametrize("name", sorted(RENDERINGS))
def test_the_mounted_config_authenticates_callers_from_the_secrets_token_file(
    rendered: dict[str, list[dict[str, Any]]],
    name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Listening on the pod's address is allowed because the API takes the Secret's tokens."""
    settings = load_settings(lay_out_mounts(rendered[name], tmp_path))
    assert settings.api is not None
    token = new_token()
    tokens_file = yaml.safe_dump(
        {
            "tokens": [
                {"identity": "alertmanager", "roles": ["sender"], "sha256": token_digest(token)}
            ]
        }
    )
    monkeypatch.setenv("SELFHEAL_API_TOKENS", tokens_file)
    access.check_bind(settings.api)
    caller = access.authenticator_for(settings).authenticate(f"Bearer {token}")
    assert (caller.identity, caller.roles) == ("alertmanager", frozenset({"sender"}))
    monkeypatch.delenv("SELFHEAL_API_TOKENS")
    with pytest.raises(ConfigError, match="SELFHEAL_API_TOKENS is not set"):
        access.authenticator_for(settings)
