"""The reduced reliability suite inside ``make test``: the same code as ``make reliability``, fewer cases."""

from __future__ import annotations

from reliability.run import run_suite
from reliability.scale import REDUCED


def test_the_promises_hold_under_crashes_load_fuzzing_and_rate_limits() -> None:
    report = run_suite(REDUCED)
    assert report.ok, "\n" + report.table()
    assert any(f.section == "crash" for f in report.figures)  # every section ran and reported
    assert {f.section for f in report.figures} >= {"crash", "load", "fuzz", "rate limits", "claims", "secrets"}
