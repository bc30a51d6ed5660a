"""Cold-start imports of the two Lambda handlers, against ``import boto3, requests`` (issue 12 §4).

Every new Lambda instance pays its handler module's imports before the first request. Each figure here is
one import statement timed inside a fresh interpreter (the same one as this process), with ``functions`` on
PYTHONPATH as in Lambda: the baseline ``import boto3, requests``, then each handler. Two settings:

- tracing on, as deployed: ``LAMBDA_TASK_ROOT`` set (Powertools' Tracer traces only inside Lambda) and
  ``POWERTOOLS_TRACE_DISABLED`` unset;
- tracing off: the same with ``POWERTOOLS_TRACE_DISABLED=true``.

One throwaway round first writes the bytecode caches; then the commands run interleaved, round after round,
each handler right after the baseline with the same setting, so a machine that slows down slows both alike.
Each time is the median of the rounds; each ratio is the median of the rounds' handler-over-baseline ratios.
Target: at most 1.6x. On a machine shared with other work single runs move by tens of percent: give more rounds.

``python -m devstack.cold_import [--rounds N]`` (PYTHONPATH=tests) prints the table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"
BASELINE = "boto3, requests"
IMPORTS = (BASELINE, "assets_attach.handlers.webhook", "assets_attach.handlers.worker")
TARGET_RATIO = 1.6

# The child times nothing but the import statement: interpreter start-up is the same for every command.
CHILD = "import time\nstart = time.perf_counter()\nimport {modules}\nprint(time.perf_counter() - start)\n"


@dataclass(frozen=True)
class ImportTiming:
    name: str  # what was imported: "boto3, requests" or a handler module
    tracing: bool
    median_seconds: float
    ratio: float  # median of each round's time over the baseline's time in that round, same tracing setting


def child_env(tracing: bool) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(FUNCTIONS), env.get("PYTHONPATH")) if p)
    env["LAMBDA_TASK_ROOT"] = str(FUNCTIONS)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # the warm-up round is there to write the bytecode caches
    if tracing:
        for off_switch in ("POWERTOOLS_TRACE_DISABLED", "AWS_SAM_LOCAL", "AWS_CHALICE_CLI_MODE"):
            env.pop(off_switch, None)
    else:
        env["POWERTOOLS_TRACE_DISABLED"] = "true"
    return env


def import_seconds(modules: str, env: dict[str, str]) -> float:
    """Seconds that ``import <modules>`` takes in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD.format(modules=modules)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return float(done.stdout.strip().splitlines()[-1])


def measure(rounds: int = 5) -> list[ImportTiming]:
    """Median import time of the baseline and of each handler, tracing on and off, after one warm-up round."""
    if rounds < 1:
        raise ValueError("rounds must be at least 1")
    settings = {tracing: child_env(tracing) for tracing in (True, False)}
    samples: dict[tuple[str, bool], list[float]] = {(m, t): [] for t in settings for m in IMPORTS}
    for round_no in range(rounds + 1):
        for tracing, env in settings.items():
            for modules in IMPORTS:  # the baseline first, each handler right after it
                elapsed = import_seconds(modules, env)
                if round_no:  # round 0 only warms the bytecode caches
                    samples[modules, tracing].append(elapsed)
    timings = []
    for (modules, tracing), seconds in samples.items():
        ratios = [s / b for s, b in zip(seconds, samples[BASELINE, tracing], strict=True)]
        timings.append(ImportTiming(modules, tracing, statistics.median(seconds), statistics.median(ratios)))
    return timings


def markdown_table(timings: list[ImportTiming]) -> str:
    lines = ["| import | tracing | median ms | × `import boto3, requests` |", "|---|---|---:|---:|"]
    for t in sorted(timings, key=lambda t: (not t.tracing, t.name != BASELINE)):
        name = f"`import {t.name}`"
        lines.append(f"| {name} | {'on' if t.tracing else 'off'} | {t.median_seconds * 1000:.0f} | {t.ratio:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="counted rounds (median of these); default 5")
    args = parser.parse_args(argv)
    timings = measure(args.rounds)
    sys.stdout.write(markdown_table(timings))
    worst = max(t.ratio for t in timings if t.name != BASELINE)
    sys.stdout.write(f"\nworst handler: {worst:.2f}x the baseline (target: at most {TARGET_RATIO}x)\n")


if __name__ == "__main__":
    main()
