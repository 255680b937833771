"""`selfheal bench`'s printed report, rendered from real measurements at small scope.

`make bench` prints this report; a key renamed in one stage's figures must fail here, not
in front of a user.
"""

from __future__ import annotations

import io

import pytest

from selfheal.cli import bench, timeline


def test_the_bench_report_prints_every_stage_from_real_measurements(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)  # a set width is the user's to choose
    results = {
        "machine": bench.machine(),
        "loop": bench.bench_loop(None, scenarios=("flash-sale",)),
        "policy": bench.bench_policy(None, evaluations=20),
        "rules": bench.bench_rules(None, minutes=1),
        "twin": bench.bench_twin("flash-sale"),
        "detectors": bench.bench_detectors(series=20, samples=200),
    }
    out = io.StringIO()
    # A file, as when `make bench` is piped into a log: rich's default 80 columns must not
    # cut the scenario or signal names.
    timeline.print_bench(timeline.report_console(out), results)
    text = out.getvalue()

    run = results["loop"][0]
    assert "flash-sale" in text
    assert run["signal"] in text  # the incident that remediated, whichever signal opened it
    assert run["act_s"] is not None, results["loop"]
    assert f"{run['act_s']:.1f} s" in text
    assert ("verified" in text) == run["verified"]
    assert f"{results['policy']['evals_per_s']:,} decisions/s" in text
    assert f"over {results['rules']['series']} series" in text
    assert "twin: flash-sale, 10m of scenario time" in text
    detectors = results["detectors"]
    assert (
        f"detector novelty: {detectors['batch_us_per_sample']} us/sample on the batch path "
        f"(20 series), {detectors['streaming_us_per_sample']} us/sample one series at a time"
    ) in text
