"""The projection and compliance benchmarks run end to end at a tiny size (so a change to the
read models cannot leave them broken until the next long run). Their figures mean nothing here."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def _run(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_the_compliance_benchmark_runs() -> None:
    out = _run("bench.compliance", "--people", "60", "--statements", "3000", "--runs", "2", "--facts-runs", "1",
               "--live", "300")
    assert "the status rows answer: True" in out
    for label in ("unit:", "trust:", "region:", "units:"):
        assert f"{label}" in out and "[status]" in out and "[facts]" in out
    assert "incremental: 300 new statements applied" in out


def test_the_projection_benchmark_runs() -> None:
    out = _run("bench.projections", "--statements", "3000", "--people", "60", "--batch-size", "500",
               "--lag-rate", "200", "--lag-seconds", "3")
    assert "(b) rebuild all three at once" in out
    assert "(c) live lag at" in out
