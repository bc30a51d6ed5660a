"""The suite's sections in order, each on a fresh local stack, and the secret scan over all of them."""

from __future__ import annotations

from collections.abc import Callable

from reliability import claims, crash, fuzz, load, rate_limits
from reliability.harness import leaked_secrets, suite
from reliability.report import Figure, Report
from reliability.scale import Scale


def run_suite(scale: Scale, progress: Callable[[str], None] = lambda _: None) -> Report:
    report = Report()
    leaks: dict[str, int] = {}
    # The crash matrix needs redelivery soon after a kill; the others a visibility longer than an invocation.
    sections = [
        ("crash matrix", crash.run, {"visibility_timeout": 4, "max_receive_count": 10}),
        ("load with duplicates", load.run, {"visibility_timeout": 90}),
        ("fuzzing", fuzz.run, {"visibility_timeout": 90}),
        ("rate limits", rate_limits.run, {"visibility_timeout": 90}),
        ("claims across jobs", claims.run, {"visibility_timeout": 90}),
    ]
    for name, section, stack_settings in sections:
        progress(name)
        with suite(**stack_settings) as running:
            section(scale, report, running)
            leaks.update(leaked_secrets(running))
    occurrences = sum(leaks.values())
    report.add(
        Figure(
            "secrets",
            "credentials in logs, job records, DLQ bodies, API answers",
            str(occurrences),
            "0",
            occurrences == 0,
            detail="; ".join(f"{where} ({count}x)" for where, count in leaks.items()),
        ),
        summary=f"secrets {occurrences} found",
    )
    return report
