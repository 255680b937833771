"""In a pod: the API server over HTTPS with the service account's CA, token and namespace.

The twin is served over HTTPS with a throwaway CA's certificate and requires a bearer
token, and the service account's files are laid out as the kubelet lays out a projected
volume (`..data` a symlink to a timestamped directory, each file a symlink into it, a
rotation swapping `..data` in one rename), so the adapter reads what a pod would have.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from selfheal.actions.kubernetes_client import KubernetesCluster
from selfheal.domain.errors import ConfigError, PermanentError
from selfheal.domain.time import ScaledClock
from selfheal.runtime.settings import load_settings
from selfheal.twin import scenario, server

from certificates import Authority, make_authority
from support import FAST, example_config, kubectl_runner

NAMESPACE = "selfheal"
# The service account's token before and after the kubelet rotates it, and one nobody has.
FIRST_TOKEN, ROTATED_TOKEN, WRONG_TOKEN = "token-1", "token-2", "not-the-token"
FILES = ("token", "ca.crt", "namespace")


def project(directory: Path, *, token: str, ca: Path) -> None:
    """Write the service account's files as the kubelet's atomic writer does."""
    directory.mkdir(parents=True, exist_ok=True)
    version = directory / f"..{time.time_ns()}"
    version.mkdir()
    (version / "token").write_text(token, encoding="utf-8")
    (version / "ca.crt").write_bytes(ca.read_bytes())
    (version / "namespace").write_text(NAMESPACE, encoding="utf-8")
    staged = directory / "..data_tmp"
    staged.symlink_to(version.name)
    staged.replace(directory / "..data")
    for name in FILES:
        if not (directory / name).is_symlink():
            (directory / name).symlink_to(f"..data/{name}")


@pytest.fixture
def authority(tmp_path: Path) -> Authority:
    return make_authority(tmp_path / "pki")


@pytest.fixture
def https_twin(authority: Authority) -> Iterator[server.TwinServer]:
    """The flash-sale twin over HTTPS, answering its Kubernetes API to FIRST_TOKEN only."""
    twin = server.TwinServer(
        server.Twin(scenario.load("flash-sale"), clock=ScaledClock(speed=FAST)),
        tls=server.TlsFiles(certificate=authority.server_certificate, key=authority.server_key),
        expected_token=FIRST_TOKEN,
    )
    twin.start()
    try:
        yield twin
    finally:
        twin.stop()


def pod_environment(twin: server.TwinServer) -> dict[str, str]:
    return {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(twin.port)}


def in_cluster(twin: server.TwinServer, account: Path) -> KubernetesCluster:
    return KubernetesCluster(
        in_cluster=True, service_account_dir=account, environ=pod_environment(twin)
    )


def test_in_cluster_reads_the_address_the_ca_the_token_and_the_namespace(
    https_twin: server.TwinServer, authority: Authority, tmp_path: Path
) -> None:
    """The API at https://HOST:PORT, its certificate checked, the token sent."""
    account = tmp_path / "serviceaccount"
    project(account, token=FIRST_TOKEN, ca=authority.ca_certificate)
    cluster = in_cluster(https_twin, account)
    assert cluster.host == f"https://127.0.0.1:{https_twin.port}"
    assert cluster.namespace == NAMESPACE
    assert cluster.deployment("production", "order-service").replicas == 2


def test_a_rotated_token_is_sent_from_the_next_request_on(
    https_twin: server.TwinServer, authority: Authority, tmp_path: Path
) -> None:
    """After a rotation, the next request carries the new token.

    Once the twin wants the new token the old one is refused (401), until the kubelet swaps
    the file.
    """
    account = tmp_path / "serviceaccount"
    project(account, token=FIRST_TOKEN, ca=authority.ca_certificate)
    cluster = in_cluster(https_twin, account)
    cluster.deployment("production", "order-service")
    https_twin.expected_token = ROTATED_TOKEN
    with pytest.raises(PermanentError, match="401 Unauthorized"):
        cluster.deployment("production", "order-service")
    project(account, token=ROTATED_TOKEN, ca=authority.ca_certificate)
    assert cluster.deployment("production", "order-service").name == "order-service"


def test_a_request_without_the_token_is_refused(
    https_twin: server.TwinServer, authority: Authority, tmp_path: Path
) -> None:
    """The twin checks the token: a client with another one gets 401, as from a real API."""
    config = tmp_path / "kubeconfig"
    config.write_text(
        yaml.safe_dump(
            server.kubeconfig(
                https_twin.url,
                namespace="production",
                token=WRONG_TOKEN,
                certificate_authority=authority.ca_certificate,
            )
        ),
        encoding="utf-8",
    )
    with pytest.raises(PermanentError, match="401 Unauthorized"):
        KubernetesCluster(kubeconfig=config).deployment("production", "order-service")
    refused = kubectl_runner(config)("get", "deployments", check=False)
    assert refused.returncode != 0
    assert "You must be logged in to the server" in refused.stderr


def test_kubectl_reaches_the_https_twin_with_the_ca_and_the_token(
    https_twin: server.TwinServer, authority: Authority, tmp_path: Path
) -> None:
    """The real kubectl verifies the twin's certificate against the CA and sends the token."""
    config = tmp_path / "kubeconfig"
    config.write_text(
        yaml.safe_dump(
            server.kubeconfig(
                https_twin.url,
                namespace="production",
                token=FIRST_TOKEN,
                certificate_authority=authority.ca_certificate,
            )
        ),
        encoding="utf-8",
    )
    listed = kubectl_runner(config)("get", "deployments", "-o", "name")
    assert "deployment.apps/order-service" in listed.stdout.split()


def test_the_api_certificate_is_checked_against_the_mounted_ca(
    https_twin: server.TwinServer, tmp_path: Path
) -> None:
    """A CA that did not sign the API server's certificate: no request gets through."""
    stranger = make_authority(tmp_path / "other-pki", name="another-ca")
    account = tmp_path / "serviceaccount"
    project(account, token=FIRST_TOKEN, ca=stranger.ca_certificate)
    with pytest.raises(PermanentError, match=r"no TLS connection .* CERTIFICATE_VERIFY_FAILED"):
        in_cluster(https_twin, account).deployment("production", "order-service")


def test_outside_a_pod_in_cluster_is_a_clear_config_error(
    authority: Authority, tmp_path: Path
) -> None:
    """No KUBERNETES_SERVICE_HOST, or no token file: the error says what is missing."""
    account = tmp_path / "serviceaccount"
    project(account, token=FIRST_TOKEN, ca=authority.ca_certificate)
    with pytest.raises(ConfigError, match=r"cluster\.in_cluster.*Service host/port is not set"):
        KubernetesCluster(in_cluster=True, service_account_dir=account, environ={})
    (account / "token").unlink()
    environ = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": "6443"}
    with pytest.raises(ConfigError, match="Service token file does not exist"):
        KubernetesCluster(in_cluster=True, service_account_dir=account, environ=environ)


def test_in_cluster_and_a_kubeconfig_together_are_refused_at_the_key(tmp_path: Path) -> None:
    """One way into the cluster: both set is a config error at `cluster`'s line."""
    (tmp_path / "kubeconfig").write_text("{}", encoding="utf-8")
    config = example_config(
        tmp_path, cluster={"in_cluster": True, "kubeconfig": str(tmp_path / "kubeconfig")}
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert str(caught.value).startswith(f"{config}:")
    assert "(cluster): set `kubeconfig` or `in_cluster: true`, not both" in str(caught.value)
    alone = example_config(tmp_path, cluster={"in_cluster": True}, twin=None)
    assert load_settings(alone).cluster.in_cluster


def test_run_outside_a_pod_with_in_cluster_refuses_before_making_any_state(
    tmp_path: Path,
) -> None:
    """`selfheal run` names the config key and what is missing; no state directory."""
    config = example_config(tmp_path, cluster={"in_cluster": True}, twin=None)
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("KUBERNETES_")
    }
    result = subprocess.run(
        [sys.executable, "-m", "selfheal", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=environment,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: cannot use the in-cluster configuration")
    assert "(cluster.in_cluster)" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "state").exists()
