"""`kubectl logs` and the client's pod log reads against a running twin, over HTTP."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from support import RunningTwin, kubectl_json, kubectl_runner, start_twin, wait_until

Kubectl = Callable[..., subprocess.CompletedProcess[str]]
NS = "production"
# The kubelet's log timestamps: RFC 3339 with exactly nine fractional digits.
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z ")
CRASH_SCENARIO = """\
name: one-crash
duration: 10m
seed: 42
load: {base_rps: 200, noise: 0.02}
faults:
  - {at: 30s, type: pod_crash, service: catalog, count: 1}
"""


def _pod_names(kubectl: Kubectl, app: str) -> list[str]:
    pods = kubectl_json(kubectl, "get", "pods", "-l", f"app={app}", "-n", NS)
    return sorted(pod["metadata"]["name"] for pod in pods["items"])


def test_pod_log_starts_with_its_own_container_starting(kubectl: Kubectl) -> None:
    """`kubectl logs POD` prints the pod's start-up lines, naming its service and image."""
    pod = _pod_names(kubectl, "order-service")[0]
    lines = kubectl("logs", pod, "-n", NS).stdout.splitlines()
    assert lines[0].startswith("INFO  order-service starting: image=")
    assert "registry.example.com/shop/app:1.0.0" in lines[0]
    assert "cpu.limit=500m" in lines[0]
    assert "INFO  listening on :8080" in lines
    assert not any("catalog" in line or "frontend" in line for line in lines)


def test_pod_log_summarizes_requests_every_ten_seconds(kubectl: Kubectl) -> None:
    """A serving pod's log gains a summary of its requests, counts and latency, each window."""
    pod = _pod_names(kubectl, "catalog")[0]

    def two_summaries() -> list[str]:
        output = kubectl("logs", pod, "-n", NS).stdout
        found = [line for line in output.splitlines() if line.startswith("INFO  served ")]
        return found if len(found) >= 2 else []

    first = wait_until(two_summaries)
    pattern = r"INFO  served \d+ requests in the last 10s: \d+ ok, 0 errors, mean latency \d+ ms"
    assert re.fullmatch(pattern, first[1])


def test_deployment_log_comes_from_one_of_its_pods(kubectl: Kubectl) -> None:
    """`kubectl logs deployment/NAME` picks a pod of that deployment and prints its log."""
    result = kubectl("logs", "deployment/catalog", "-n", NS)
    assert "catalog starting" in result.stdout.splitlines()[0]
    chosen = re.search(r"using pod/(\S+)", result.stderr)
    assert chosen is not None
    assert chosen.group(1) in _pod_names(kubectl, "catalog")


def test_tail_and_timestamps_give_the_newest_lines_stamped(kubectl: Kubectl) -> None:
    """`--tail 2 --timestamps -c NAME` prints the last two lines, each after its timestamp."""
    pod = _pod_names(kubectl, "order-service")[0]
    tail = kubectl(
        "logs", pod, "-n", NS, "--tail", "2", "--timestamps", "-c", "order-service"
    ).stdout.splitlines()
    # Read afterwards: the log may have grown since, but only at its end.
    everything = kubectl("logs", pod, "-n", NS).stdout.splitlines()
    assert len(tail) == 2
    assert all(STAMP.match(line) for line in tail)
    texts = [STAMP.sub("", line) for line in tail]
    assert any(everything[i : i + 2] == texts for i in range(len(everything) - 1))
    assert len(everything) > 2


def test_throttled_pod_logs_warnings_in_the_flash_sale(kubectl: Kubectl) -> None:
    """Once the sale's load throttles order-service, its log warns of throttling and slowness."""
    pod = _pod_names(kubectl, "order-service")[0]

    def warnings() -> list[str]:
        lines = kubectl("logs", pod, "-n", NS).stdout.splitlines()
        return [line for line in lines if line.startswith("WARN")]

    found = wait_until(
        lambda: (
            any("CPU throttled" in line for line in warnings())
            and any("slow responses" in line for line in warnings())
        ),
        timeout=30,
    )
    assert found


def test_unknown_pod_is_not_found(kubectl: Kubectl, kube_client: client.ApiClient) -> None:
    """Logs of a pod that does not exist: kubectl's NotFound, and a 404 Status on the wire."""
    result = kubectl("logs", "checkout-0", "-n", NS, check=False)
    assert result.returncode == 1
    assert 'pods "checkout-0" not found' in result.stderr
    with pytest.raises(ApiException) as raised:
        client.CoreV1Api(kube_client).read_namespaced_pod_log("checkout-0", NS)
    assert raised.value.status == 404
    assert '"reason":"NotFound"' in raised.value.body
    assert '"kind":"Status"' in raised.value.body


def test_unknown_container_and_bad_options_are_refused(
    kubectl: Kubectl, kube_client: client.ApiClient
) -> None:
    """A container the pod lacks is 400; a negative tail is 422 Invalid, as on a real server."""
    core = client.CoreV1Api(kube_client)
    pod = _pod_names(kubectl, "catalog")[0]
    with pytest.raises(ApiException) as unknown:
        core.read_namespaced_pod_log(pod, NS, container="sidecar")
    assert unknown.value.status == 400
    assert f"container sidecar is not valid for pod {pod}" in unknown.value.body
    with pytest.raises(ApiException) as negative:
        core.read_namespaced_pod_log(pod, NS, tail_lines=-1)
    assert negative.value.status == 422
    assert "tailLines" in negative.value.body


def test_previous_log_of_a_pod_that_never_restarted_is_a_bad_request(kubectl: Kubectl) -> None:
    """`--previous` on a container that never crashed gets kubectl's BadRequest message."""
    pod = _pod_names(kubectl, "frontend")[0]
    result = kubectl("logs", pod, "-n", NS, "--previous", check=False)
    assert result.returncode == 1
    assert f'previous terminated container "frontend" in pod "{pod}" not found' in result.stderr


def test_client_reads_a_log_as_plain_text(kubectl: Kubectl, kube_client: client.ApiClient) -> None:
    """The Python client's log read returns the same text kubectl prints."""
    pod = _pod_names(kubectl, "payment-gateway")[0]
    text = client.CoreV1Api(kube_client).read_namespaced_pod_log(pod, NS, tail_lines=3)
    assert isinstance(text, str)
    assert len(text.splitlines()) == 3


def test_follow_streams_new_lines_as_the_model_writes_them(
    kubectl: Kubectl, kube_client: client.ApiClient
) -> None:
    """`follow=true` keeps the response open and sends each new summary as it is logged."""
    pod = _pod_names(kubectl, "frontend")[0]
    response = client.CoreV1Api(kube_client).read_namespaced_pod_log(
        pod, NS, follow=True, tail_lines=0, _preload_content=False, _request_timeout=10
    )
    received = b""
    deadline = time.monotonic() + 10
    try:
        for chunk in response.stream(256):
            received += chunk
            if b"INFO  served " in received or time.monotonic() > deadline:
                break
    finally:
        response.close()
        response.release_conn()
    assert b"INFO  served " in received


@pytest.fixture
def crashing_twin(tmp_path: Path) -> Iterator[RunningTwin]:
    """A twin whose scenario crashes one catalog pod 30 scenario seconds in."""
    path = tmp_path / "one-crash.yaml"
    path.write_text(CRASH_SCENARIO, encoding="utf-8")
    running = start_twin(str(path), tmp_path)
    try:
        yield running
    finally:
        running.server.stop()


def test_previous_log_holds_the_crashed_containers_last_words(
    crashing_twin: RunningTwin,
) -> None:
    """After a crash, `--previous` ends with the exit; the current log is a new container's."""
    kubectl = kubectl_runner(crashing_twin.kubeconfig)
    pod = _pod_names(kubectl, "catalog")[0]

    def restarted() -> bool:
        status = kubectl_json(kubectl, "get", "pod", pod, "-n", NS)["status"]
        return status["containerStatuses"][0]["restartCount"] >= 1

    wait_until(restarted)
    previous = kubectl("logs", pod, "-n", NS, "--previous").stdout.splitlines()
    assert previous[0].startswith("INFO  catalog starting: ")
    assert previous[-1] == "FATAL exiting with status 1"
    current = kubectl("logs", pod, "-n", NS).stdout.splitlines()
    assert current[0].startswith("INFO  catalog starting (restart 1): ")
    assert "FATAL exiting with status 1" not in current
