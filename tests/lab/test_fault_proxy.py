"""The fault proxy between the real Kubernetes client (and kubectl) and the real twin."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from selfheal.actions import kubernetes_client
from selfheal.domain import errors
from selfheal.lab import fault_proxy
from selfheal.twin import server

from support import RunningTwin, kubectl_runner, wait_until

NAMESPACE = "production"
SCALE_PATH = r"/deployments/order-service/scale$"


@pytest.fixture
def proxy(twin: RunningTwin) -> Iterator[fault_proxy.FaultProxy]:
    with fault_proxy.FaultProxy(twin.url) as running:
        yield running


@pytest.fixture
def cluster(proxy: fault_proxy.FaultProxy) -> Iterator[kubernetes_client.KubernetesCluster]:
    connected = kubernetes_client.KubernetesCluster(host=proxy.url, request_timeout=5.0)
    yield connected
    connected.close()


def changes(twin: RunningTwin) -> list[dict[str, Any]]:
    """The requests that reached the twin and may have changed it."""
    entries: list[dict[str, Any]] = httpx.get(f"{twin.url}/twin/requests", timeout=10).json()
    return entries


def scale_patches(twin: RunningTwin) -> list[dict[str, Any]]:
    return [
        entry
        for entry in changes(twin)
        if entry["method"] == "PATCH" and entry["path"].endswith("/order-service/scale")
    ]


def break_scale(action: str, **options: Any) -> fault_proxy.FaultRule:
    return fault_proxy.FaultRule(path=SCALE_PATH, method="PATCH", action=action, **options)  # type: ignore[arg-type]


# Passing through


def test_reads_and_a_scale_pass_through_untouched(
    twin: RunningTwin,
    proxy: fault_proxy.FaultProxy,
    cluster: kubernetes_client.KubernetesCluster,
) -> None:
    """With no rules, a read and a scale PATCH reach the twin and their answers come back."""
    assert cluster.deployment(NAMESPACE, "order-service").replicas == 2
    assert cluster.scale(NAMESPACE, "order-service", 4) == 4
    assert cluster.deployment(NAMESPACE, "order-service").replicas == 4
    [patch] = scale_patches(twin)
    assert patch["status"] == 200
    assert json.loads(patch["body"]) == {"spec": {"replicas": 4}}
    assert proxy.forwarded == 3
    assert proxy.injected == []


def test_kubectl_gets_deployments_through_the_proxy(
    tmp_path: Path, proxy: fault_proxy.FaultProxy
) -> None:
    """The real kubectl (Go's HTTP client, discovery, gzip) works through the proxy."""
    config = server.write_kubeconfig(tmp_path / "proxied", proxy.url, namespace=NAMESPACE)
    listed = kubectl_runner(config)("get", "deployments", "-o", "json")
    names = {item["metadata"]["name"] for item in json.loads(listed.stdout)["items"]}
    assert "order-service" in names
    assert proxy.injected == []


def test_one_connection_carries_several_requests_until_connection_close(
    proxy: fault_proxy.FaultProxy,
) -> None:
    """Keep-alive holds across requests; `Connection: close` ends the connection after one."""
    host, port = proxy.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        statuses = []
        for _ in range(3):
            connection.request("GET", f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments")
            answer = connection.getresponse()
            answer.read()
            statuses.append(answer.status)
            kept = connection.sock
        assert statuses == [200, 200, 200]
        assert kept is connection.sock
        connection.request("GET", "/healthz", headers={"Connection": "close"})
        closing = connection.getresponse()
        assert closing.read() == b"ok"
        assert closing.getheader("Connection") == "close"
        assert closing.will_close
    finally:
        connection.close()


def test_a_chunked_request_body_is_forwarded_whole(
    twin: RunningTwin, proxy: fault_proxy.FaultProxy
) -> None:
    """A request body sent in chunks reaches the twin as one body with a Content-Length."""

    def pieces() -> Iterator[bytes]:
        yield b'{"spec": '
        yield b'{"replicas": 3}}'

    answer = httpx.patch(
        f"{proxy.url}/apis/apps/v1/namespaces/{NAMESPACE}/deployments/order-service/scale",
        content=pieces(),
        headers={"Content-Type": "application/merge-patch+json"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["spec"]["replicas"] == 3
    [patch] = scale_patches(twin)
    assert json.loads(patch["body"]) == {"spec": {"replicas": 3}}


def test_a_watch_is_refused_rather_than_buffered_forever(proxy: fault_proxy.FaultProxy) -> None:
    """A `watch=true` request gets 501 at once: the proxy buffers answers and cannot stream."""
    answer = httpx.get(
        f"{proxy.url}/apis/apps/v1/namespaces/{NAMESPACE}/deployments",
        params={"watch": "true"},
        timeout=10,
    )
    assert answer.status_code == 501
    assert proxy.forwarded == 0


# Injected faults


def test_an_injected_500_fails_one_scale_then_lets_the_next_through(
    twin: RunningTwin,
    proxy: fault_proxy.FaultProxy,
    cluster: kubernetes_client.KubernetesCluster,
) -> None:
    """A 500 on the scale PATCH is a TemporaryError, never reaches the twin, and happens once."""
    proxy.set_rules([break_scale("status", status=500)])
    with pytest.raises(errors.TemporaryError, match="500"):
        cluster.scale(NAMESPACE, "order-service", 4)
    assert scale_patches(twin) == []
    assert cluster.scale(NAMESPACE, "order-service", 4) == 4
    assert len(scale_patches(twin)) == 1


def test_an_injected_409_is_a_temporary_conflict(
    proxy: fault_proxy.FaultProxy, cluster: kubernetes_client.KubernetesCluster
) -> None:
    """A 409 answer is retried later, as the API server's optimistic-lock conflicts are."""
    proxy.set_rules([break_scale("status", status=409)])
    with pytest.raises(errors.TemporaryError, match="409 Conflict"):
        cluster.scale(NAMESPACE, "order-service", 4)
    assert cluster.scale(NAMESPACE, "order-service", 4) == 4


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (409, "Conflict"),
        (429, "TooManyRequests"),
        (500, "InternalError"),
        (503, "ServiceUnavailable"),
        (504, "Timeout"),
        (418, "Unknown"),
    ],
)
def test_an_injected_status_is_a_kubernetes_status_object(
    proxy: fault_proxy.FaultProxy, status: int, reason: str
) -> None:
    """The injected answer is JSON in the API server's Status shape, its reason set by code."""
    proxy.set_rules([fault_proxy.FaultRule(path="/healthz", action="status", status=status)])
    answer = httpx.get(f"{proxy.url}/healthz", timeout=10)
    assert answer.status_code == status
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "injected fault",
        "reason": reason,
        "code": status,
    }


def test_a_reset_connection_is_a_temporary_failure_to_reach_the_api(
    twin: RunningTwin,
    proxy: fault_proxy.FaultProxy,
    cluster: kubernetes_client.KubernetesCluster,
) -> None:
    """A connection reset on a pooled keep-alive connection surfaces as "cannot reach"."""
    cluster.deployment(NAMESPACE, "order-service")  # opens the connection the reset will drop
    proxy.set_rules([break_scale("reset")])
    with pytest.raises(errors.TemporaryError, match="cannot reach"):
        cluster.scale(NAMESPACE, "order-service", 4)
    assert scale_patches(twin) == []
    assert cluster.scale(NAMESPACE, "order-service", 4) == 4


def test_a_hang_longer_than_the_client_timeout_is_a_temporary_failure(
    twin: RunningTwin, proxy: fault_proxy.FaultProxy
) -> None:
    """A request held past the client's timeout fails temporarily, and nothing is forwarded."""
    impatient = kubernetes_client.KubernetesCluster(host=proxy.url, request_timeout=1.0)
    proxy.set_rules([break_scale("hang", delay_s=30.0)])
    began = time.monotonic()
    try:
        with pytest.raises(errors.TemporaryError, match="cannot reach"):
            impatient.scale(NAMESPACE, "order-service", 4)
    finally:
        impatient.close()
    assert time.monotonic() - began < 10.0
    assert scale_patches(twin) == []
    assert [entry["action"] for entry in proxy.injected] == ["hang"]


def test_a_hang_ends_by_dropping_the_connection_unanswered(proxy: fault_proxy.FaultProxy) -> None:
    """After its delay, a hung request's connection is closed without any answer."""
    proxy.set_rules([fault_proxy.FaultRule(path="/healthz", action="hang", delay_s=0.2)])
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{proxy.url}/healthz", timeout=10)
    assert proxy.forwarded == 0


def test_a_delay_waits_then_forwards(
    twin: RunningTwin,
    proxy: fault_proxy.FaultProxy,
    cluster: kubernetes_client.KubernetesCluster,
) -> None:
    """A delayed request still lands, after the delay, and counts as forwarded."""
    proxy.set_rules([break_scale("delay", delay_s=0.3)])
    began = time.monotonic()
    assert cluster.scale(NAMESPACE, "order-service", 4) == 4
    assert time.monotonic() - began >= 0.3
    assert len(scale_patches(twin)) == 1
    assert proxy.forwarded == 1
    assert [entry["action"] for entry in proxy.injected] == ["delay"]


# Which requests a rule breaks


def test_after_lets_the_first_matching_requests_through(
    twin: RunningTwin,
    proxy: fault_proxy.FaultProxy,
    cluster: kubernetes_client.KubernetesCluster,
) -> None:
    """With after=1 the first scale lands, the second fails, and the third lands again."""
    proxy.set_rules([break_scale("status", status=500, after=1)])
    assert cluster.scale(NAMESPACE, "order-service", 3) == 3
    with pytest.raises(errors.TemporaryError):
        cluster.scale(NAMESPACE, "order-service", 4)
    assert cluster.scale(NAMESPACE, "order-service", 5) == 5
    assert [json.loads(entry["body"]) for entry in scale_patches(twin)] == [
        {"spec": {"replicas": 3}},
        {"spec": {"replicas": 5}},
    ]


def test_a_rule_leaves_other_methods_and_paths_alone(
    proxy: fault_proxy.FaultProxy, cluster: kubernetes_client.KubernetesCluster
) -> None:
    """A rule for PATCH on /scale lets reads of the same deployment, and other paths, through."""
    proxy.set_rules([break_scale("status", times=None)])
    assert cluster.deployment(NAMESPACE, "order-service").replicas == 2
    assert cluster.node_count() > 0
    assert proxy.injected == []


def test_times_none_breaks_every_matching_request(
    proxy: fault_proxy.FaultProxy, cluster: kubernetes_client.KubernetesCluster
) -> None:
    """With times=None the rule never runs out."""
    proxy.set_rules([break_scale("status", status=503, times=None)])
    for _ in range(3):
        with pytest.raises(errors.TemporaryError, match="503"):
            cluster.scale(NAMESPACE, "order-service", 4)
    assert len(proxy.injected) == 3


def test_rules_chain_so_a_later_rule_sees_what_earlier_ones_let_through(
    proxy: fault_proxy.FaultProxy, cluster: kubernetes_client.KubernetesCluster
) -> None:
    """[500 once, reset once] breaks the first call with a 500, the second with a reset."""
    proxy.set_rules([break_scale("status", status=500), break_scale("reset")])
    with pytest.raises(errors.TemporaryError, match="500"):
        cluster.scale(NAMESPACE, "order-service", 4)
    with pytest.raises(errors.TemporaryError, match="cannot reach"):
        cluster.scale(NAMESPACE, "order-service", 4)
    assert cluster.scale(NAMESPACE, "order-service", 4) == 4
    assert [entry["action"] for entry in proxy.injected] == ["status", "reset"]


def test_injected_records_each_fault_with_its_request_and_time(
    proxy: fault_proxy.FaultProxy, cluster: kubernetes_client.KubernetesCluster
) -> None:
    """Every fault is listed with method, path, action, status for a status fault, and when."""
    proxy.set_rules([break_scale("status", status=409), break_scale("reset")])
    began = time.time()
    for _ in range(2):
        with pytest.raises(errors.TemporaryError):
            cluster.scale(NAMESPACE, "order-service", 4)
    path = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/order-service/scale"
    conflict, reset = proxy.injected
    assert {key: conflict[key] for key in ("method", "path", "action", "status")} == {
        "method": "PATCH",
        "path": path,
        "action": "status",
        "status": 409,
    }
    assert reset.keys() == {"method", "path", "action", "at"}
    assert began <= conflict["at"] <= reset["at"] <= time.time()


def test_setting_rules_replaces_them_and_restarts_their_counts(
    proxy: fault_proxy.FaultProxy, cluster: kubernetes_client.KubernetesCluster
) -> None:
    """A rule set again after it ran out breaks the next request anew; an empty set heals."""
    rule = break_scale("status", status=500)
    proxy.set_rules([rule])
    with pytest.raises(errors.TemporaryError):
        cluster.scale(NAMESPACE, "order-service", 4)
    proxy.set_rules([rule])
    with pytest.raises(errors.TemporaryError):
        cluster.scale(NAMESPACE, "order-service", 4)
    proxy.set_rules([break_scale("status", times=None)])
    proxy.set_rules([])
    assert cluster.scale(NAMESPACE, "order-service", 4) == 4


def test_a_rule_with_a_bad_action_or_pattern_is_refused_at_once() -> None:
    """Mistakes in a rule fail where it is written, not later inside the proxy's thread."""
    with pytest.raises(ValueError, match="action"):
        fault_proxy.FaultRule(path="/", action="explode")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="status"):
        fault_proxy.FaultRule(path="/", action="status", status=200)
    with pytest.raises(ValueError, match="unterminated"):
        fault_proxy.FaultRule(path="(", action="reset")


# Robustness


def test_a_client_leaving_mid_request_does_not_stop_the_proxy(
    proxy: fault_proxy.FaultProxy,
) -> None:
    """Half a head, half a body, or a reset from the client: the next client is still served."""
    host, port = proxy.url.removeprefix("http://").split(":")
    for partial in (
        b"GET /healthz HT",
        b"PATCH /healthz HTTP/1.1\r\nContent-Length: 100\r\n\r\n{",
        b"PATCH /healthz HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
    ):
        with socket.create_connection((host, int(port)), timeout=5) as raw:
            raw.sendall(partial)
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        raw.sendall(b"PATCH /healthz HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    assert httpx.get(f"{proxy.url}/healthz", timeout=10).text == "ok"


def test_a_malformed_request_gets_400_and_a_closed_connection(
    proxy: fault_proxy.FaultProxy,
) -> None:
    """A request line that is not HTTP is answered 400, and the connection is closed."""
    host, port = proxy.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        raw.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        answer = b""
        while chunk := raw.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b"Connection: close" in answer


def test_an_upstream_that_is_down_gives_502() -> None:
    """With nothing listening upstream the client gets 502 and a plain message, not a hang."""
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        closed_port = placeholder.getsockname()[1]
    with fault_proxy.FaultProxy(f"http://127.0.0.1:{closed_port}") as orphan:
        answer = httpx.get(f"{orphan.url}/healthz", timeout=10)
    assert answer.status_code == 502
    assert answer.headers["content-type"].startswith("text/plain")
    assert "cannot reach" in answer.text
    assert orphan.forwarded == 0


def test_stop_ends_a_hung_request(twin: RunningTwin) -> None:
    """Stopping the proxy drops connections it holds open, and returns promptly."""
    stopping = fault_proxy.FaultProxy(
        twin.url, rules=[fault_proxy.FaultRule(path="/", action="hang", delay_s=60.0)]
    )
    stopping.start()
    host, port = stopping.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        raw.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_until(lambda: stopping.injected)
        began = time.monotonic()
        stopping.stop()
        assert time.monotonic() - began < 5.0
        # An aborted socket may close with a reset rather than a FIN: dropped either way.
        with contextlib.suppress(ConnectionResetError):
            assert raw.recv(4096) == b""
    assert [entry["action"] for entry in stopping.injected] == ["hang"]
