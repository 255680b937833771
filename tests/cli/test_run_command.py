"""`selfheal run`: the controller as a process, telling what it does as it does it."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from support import example_config


def start_run(config: Path, *args: str) -> tuple[subprocess.Popen[str], queue.Queue[str | None]]:
    """`selfheal run` in a subprocess; its stderr lines arrive on the queue as they come."""
    process = subprocess.Popen(
        [sys.executable, "-m", "selfheal", "run", "--config", str(config), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stderr is not None
        with process.stderr:
            for line in process.stderr:
                lines.put(line.rstrip("\n"))
        lines.put(None)  # end of output

    threading.Thread(target=pump, daemon=True).start()
    return process, lines


def lines_until(lines: queue.Queue[str | None], wanted: str, *, timeout: float) -> list[str]:
    """Every line up to and including the first that contains `wanted`."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            continue
        if line is None:
            break
        seen.append(line)
        if wanted in line:
            return seen
    raise AssertionError(f"no line with {wanted!r} within {timeout} s; saw:\n" + "\n".join(seen))


def stop(process: subprocess.Popen[str], lines: queue.Queue[str | None]) -> list[str]:
    """SIGTERM, a clean exit, and the lines it wrote until it ended."""
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    rest = []
    while (line := lines.get(timeout=10)) is not None:
        rest.append(line)
    return rest


def test_run_logs_the_flash_sale_being_healed_as_it_happens(tmp_path: Path) -> None:
    """Between 'running' and 'stopped' the log tells the incident, the choice and the steps."""
    config = example_config(tmp_path, twin={"scenario": "flash-sale", "speed": 60})
    process, lines = start_run(config)
    try:
        told = lines_until(lines, "step scale ok", timeout=240)
    finally:
        rest = stop(process, lines)
    text = "\n".join(told + rest)
    assert "controller running; state in" in text
    assert "firing: incident" in text
    assert "policy chose scale-up" in text
    assert "order-service 2 -> 5 replicas" in text
    assert text.rstrip().endswith("controller stopped")


def test_run_with_json_logs_writes_one_object_per_line_with_the_incident(tmp_path: Path) -> None:
    """Every line is a JSON object; event lines carry the event kind and incident id."""
    config = example_config(tmp_path, twin={"scenario": "flash-sale", "speed": 60})
    process, lines = start_run(config, "--log-format", "json", "--log-level", "info")
    try:
        told = lines_until(lines, '"event": "workflow.started"', timeout=240)
    finally:
        rest = stop(process, lines)
    documents = [json.loads(line) for line in told + rest]
    assert all({"time", "level", "logger", "message"} <= set(doc) for doc in documents)
    started = next(doc for doc in documents if doc.get("event") == "workflow.started")
    assert started["incident"]
    assert started["subject"].startswith(f"remediate.{started['incident']}.")
    assert documents[-1]["message"] == "controller stopped"


def test_run_refuses_an_unknown_log_level() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "selfheal", "run", "--config", "x.yaml", "--log-level", "loud"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "unknown log level 'loud'" in result.stderr
