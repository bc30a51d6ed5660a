"""``make reliability``: the whole suite on the local stack, one table and a closing line of figures.

Sections: the crash matrix (workers killed with SIGKILL at every point a crash can happen), load with
duplicates, fuzzing of the webhook and of S3 drops, Atlassian's rate limits, and a scan of everything logged,
stored and answered for credentials. Exits non-zero when any promise breaks.

    python -m reliability [--scale full|reduced]
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime

from reliability.run import run_suite
from reliability.scale import FULL, REDUCED


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reliability", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", choices=("full", "reduced"), default="full")
    args = parser.parse_args(argv)
    scale = FULL if args.scale == "full" else REDUCED
    started = time.monotonic()
    report = run_suite(scale, progress=lambda section: print(f"... {section}", file=sys.stderr, flush=True))
    print(report.table())
    took = time.monotonic() - started
    print(f"\n{datetime.now(UTC):%Y-%m-%d}, {scale.name} scale, {took / 60:.1f} min: {report.closing_line()}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
