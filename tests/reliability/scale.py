"""How much of each section a run does: ``FULL`` for ``make reliability``, ``REDUCED`` inside ``make test``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scale:
    name: str
    crash_points: tuple[str, ...] | None  # None: every point
    crash_variants: bool  # also each point with the idempotency table briefly gone and Secrets Manager failing once
    load_distinct: int
    load_duplicates: int
    load_workers: int
    fuzz_cases: int
    storm_seconds: float


FULL = Scale(
    name="full",
    crash_points=None,
    crash_variants=True,
    load_distinct=150,
    load_duplicates=50,
    load_workers=2,
    fuzz_cases=3000,
    storm_seconds=20.0,
)
REDUCED = Scale(
    name="reduced",
    crash_points=(
        "after-credentials",
        "upload-50",
        "link-sent-no-reply",
        "drop-after-upload-reply",
        "jira-link-sent-no-reply",
    ),
    crash_variants=False,
    load_distinct=16,
    load_duplicates=6,
    load_workers=2,
    fuzz_cases=150,
    storm_seconds=6.0,
)
