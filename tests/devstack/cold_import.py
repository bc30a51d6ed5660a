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

As Lambda runs it (``--build DIR``, issue 22): the imports come from a copy of a function that ``make build``
built, read-only, every file dated 1980-01-01 as ``sam deploy``'s zip dates it, with ``PYTHONDONTWRITEBYTECODE=1``
and no site-packages, in the functions' Python 3.13 (``tests/packaging/find-python3.13``): what is not shipped as
bytecode is compiled on every import, as on every cold start. (Where the build is for another architecture, this
machine's builds of its few compiled distributions come first on the path, as ``check_build`` does.) Each handler
is then imported once more under ``-X importtime``, for the split by package.

``python -m devstack.cold_import [--rounds N] [--build .aws-sam/build/WebhookFunction]`` (PYTHONPATH=tests) prints
the table.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from devstack.built_package import HostBinaries, foreign_binaries

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"
BASELINE = "boto3, requests"
IMPORTS = (BASELINE, "assets_attach.handlers.webhook", "assets_attach.handlers.worker")
TARGET_RATIO = 1.6
ZIP_DATE = 315532800  # 1980-01-01T00:00:00Z, the date sam deploy's zip gives every file


@dataclass(frozen=True)
class Where:
    """Where the imports come from: the interpreter, the paths before everything else, Lambda's task root, and
    whether bytecode may be written (a warm-up round then writes it) and site-packages read."""

    python: str
    paths: tuple[str, ...]
    task_root: str
    lambda_like: bool = False  # read-only, no bytecode written, no site-packages


SOURCE_TREE = Where(sys.executable, (str(FUNCTIONS),), str(FUNCTIONS))


@contextmanager
def lambda_task(build_dir: Path, python: str) -> Iterator[Where]:
    """A read-only copy of a built function, every file dated 1980-01-01, as Lambda's /var/task holds it."""
    with tempfile.TemporaryDirectory() as scratch:
        task = Path(scratch) / "task"
        shutil.copytree(build_dir, task)
        paths = [str(task)]
        foreign = foreign_binaries(task)
        if foreign:
            paths.insert(0, str(HostBinaries(python, Path(scratch)).directory_for(foreign)))
        every = [*sorted(task.rglob("*"), reverse=True), task]  # each directory after what it holds
        for path in every:
            os.utime(path, (ZIP_DATE, ZIP_DATE))
            path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            yield Where(python, tuple(paths), str(task), lambda_like=True)
        finally:
            for path in every:
                if path.is_dir():
                    path.chmod(0o755)  # so that the copy can be removed


# The child times nothing but the import statement: interpreter start-up is the same for every command.
CHILD = "import time\nstart = time.perf_counter()\nimport {modules}\nprint(time.perf_counter() - start)\n"


@dataclass(frozen=True)
class ImportTiming:
    name: str  # what was imported: "boto3, requests" or a handler module
    tracing: bool
    median_seconds: float
    ratio: float  # median of each round's time over the baseline's time in that round, same tracing setting


def child_env(tracing: bool, where: Where = SOURCE_TREE) -> dict[str, str]:
    env = dict(os.environ)
    if where.lambda_like:  # nothing from this checkout; no bytecode written (root ignores the read-only bits)
        env["PYTHONPATH"] = os.pathsep.join(where.paths)
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    else:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (*where.paths, env.get("PYTHONPATH")) if p)
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # the warm-up round is there to write the bytecode caches
    env["LAMBDA_TASK_ROOT"] = where.task_root
    if tracing:
        for off_switch in ("POWERTOOLS_TRACE_DISABLED", "AWS_SAM_LOCAL", "AWS_CHALICE_CLI_MODE"):
            env.pop(off_switch, None)
    else:
        env["POWERTOOLS_TRACE_DISABLED"] = "true"
    return env


def command(where: Where, *options: str) -> list[str]:
    return [where.python, *(["-S"] if where.lambda_like else []), *options]


def import_seconds(modules: str, env: dict[str, str], where: Where = SOURCE_TREE) -> float:
    """Seconds that ``import <modules>`` takes in a fresh interpreter."""
    done = subprocess.run(
        [*command(where), "-c", CHILD.format(modules=modules)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return float(done.stdout.strip().splitlines()[-1])


def measure(rounds: int = 5, where: Where = SOURCE_TREE) -> list[ImportTiming]:
    """Median import time of the baseline and of each handler, tracing on and off, after one warm-up round."""
    if rounds < 1:
        raise ValueError("rounds must be at least 1")
    settings = {tracing: child_env(tracing, where) for tracing in (True, False)}
    samples: dict[tuple[str, bool], list[float]] = {(m, t): [] for t in settings for m in IMPORTS}
    for round_no in range(rounds + 1):
        for tracing, env in settings.items():
            for modules in IMPORTS:  # the baseline first, each handler right after it
                elapsed = import_seconds(modules, env, where)
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


def by_package(modules: str, where: Where, count: int = 8) -> list[tuple[str, float]]:
    """The packages whose own import work (``-X importtime``'s self time) ``import <modules>`` pays most, in s."""
    done = subprocess.run(
        [*command(where, "-X", "importtime"), "-c", f"import {modules}"],
        env=child_env(True, where),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    spent: Counter[str] = Counter()
    for line in done.stderr.splitlines():
        fields = line.removeprefix("import time:").split("|")
        if len(fields) == 3 and fields[0].strip().isdigit():
            spent[fields[2].strip().split(".")[0]] += int(fields[0])  # microseconds
    return [(name, us / 1e6) for name, us in spent.most_common(count)]


def split_lines(where: Where) -> list[str]:
    return [
        f"`import {modules}` by package (own time, tracing on): "
        + ", ".join(f"{name} {seconds * 1000:.0f} ms" for name, seconds in by_package(modules, where))
        for modules in IMPORTS
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="counted rounds (median of these); default 5")
    parser.add_argument("--build", type=Path, help="a function's directory that make build built (as Lambda runs it)")
    parser.add_argument("--python", default=None, help="the functions' Python 3.13 (with --build)")
    args = parser.parse_args(argv)
    if args.build:
        python = args.python or subprocess.check_output(["sh", "tests/packaging/find-python3.13"], text=True).strip()
        with lambda_task(args.build, python) as where:
            timings = measure(args.rounds, where)
            split = split_lines(where)
    else:
        timings, split = measure(args.rounds), []
    sys.stdout.write(markdown_table(timings))
    sys.stdout.write("".join(f"\n{line}" for line in split))
    worst = max(t.ratio for t in timings if t.name != BASELINE)
    sys.stdout.write(f"\nworst handler: {worst:.2f}x the baseline (target: at most {TARGET_RATIO}x)\n")


if __name__ == "__main__":
    main()
