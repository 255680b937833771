"""examples/secure as its README walks through it: the door shut, two people approve.

`selfheal run --config examples/secure/selfheal.yaml --api-listen 127.0.0.1:PORT` with the
test-only tokens of try-tokens.env: no credential gets nothing, the viewer reads but cannot
approve, and the throttling incident's scale-up runs once the approver and the admin, two
people, have approved it through `selfheal approve --api`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from selfheal.store import open_store
from selfheal.twin import server

from support import EXAMPLES, wait_until

SECURE = EXAMPLES / "secure"


def tokens() -> dict[str, str]:
    found = {}
    for line in (SECURE / "try-tokens.env").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            found[name] = value
    return found


def approve(api: str, incident: str, token: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "selfheal", "approve", incident, "--api", api],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "SELFHEAL_TOKEN": token},
    )


def test_the_secure_example_answers_only_its_tokens_and_waits_for_two_people(
    tmp_path: Path,
) -> None:
    port = server.free_port()
    api = f"http://127.0.0.1:{port}"
    state = tmp_path / "state"
    given = tokens()
    log = (tmp_path / "controller.log").open("w")
    command = [
        "run",
        "--config",
        str(SECURE / "selfheal.yaml"),
        "--api-listen",
        f"127.0.0.1:{port}",
    ]
    process = subprocess.Popen(
        [sys.executable, "-m", "selfheal", *command, "--state-dir", str(state)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:

        def ready() -> bool:
            assert process.poll() is None, (tmp_path / "controller.log").read_text()
            try:
                return httpx.get(f"{api}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout=120)
        viewer = {"authorization": f"Bearer {given['SELFHEAL_VIEWER_TOKEN']}"}
        assert httpx.get(f"{api}/api/v1/incidents", timeout=10).status_code == 401
        assert httpx.get(f"{api}/openapi.json", headers=viewer, timeout=10).status_code == 200

        def waiting() -> str | None:
            answer = httpx.get(
                f"{api}/api/v1/incidents",
                params={"state": "awaiting_approval"},
                headers=viewer,
                timeout=10,
            )
            assert answer.status_code == 200
            found = answer.json()["incidents"]
            return str(found[0]["id"]) if found else None

        wait_until(lambda: waiting() is not None, timeout=180)
        incident = waiting()
        assert incident is not None
        refused = httpx.post(
            f"{api}/api/v1/incidents/{incident}/approve", json={}, headers=viewer, timeout=10
        )
        assert refused.status_code == 403
        first = approve(api, incident, given["SELFHEAL_APPROVER_TOKEN"])
        assert first.returncode == 0, first.stderr
        assert "approved by alice" in first.stdout
        time.sleep(1.0)
        assert waiting() == incident, "one approval of a two-person runbook is not enough"
        second = approve(api, incident, given["SELFHEAL_ADMIN_TOKEN"])
        assert second.returncode == 0, second.stderr
        assert "approved by root" in second.stdout
        wait_until(lambda: waiting() != incident, timeout=60)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        log.close()
    with open_store(f"sqlite:///{state / 'state.db'}") as store:
        verdicts = [r.payload["by"] for r in store.audit.records(kind="approval.given")]
        closed = [r.payload["outcome"] for r in store.audit.records(kind="approval.closed")]
    assert verdicts[:2] == ["alice", "root"]
    assert closed[0] == "approved"
    output = (tmp_path / "controller.log").read_text(encoding="utf-8")
    for token in given.values():
        assert token not in output
