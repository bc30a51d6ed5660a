"""Run a module as ``python -m`` would, then report this process's peak RSS.

``ru_maxrss`` of a child survives ``exec`` and so includes its parent's memory at fork time; VmHWM of
the process's own address space does not. Usage: ``python -m devstack.peak_rss MODULE ARGS...``; the last
line on stderr is ``peak-rss-bytes: N``.
"""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path


def vm_hwm_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def parse(stderr: str) -> int:
    """The figure from a child's stderr."""
    for line in reversed(stderr.splitlines()):
        if line.startswith("peak-rss-bytes: "):
            return int(line.split()[1])
    raise ValueError("the child reported no peak RSS")


def run_measured(module: str, *args: str, timeout: float = 600) -> tuple[subprocess.CompletedProcess[str], int]:
    """Run ``python -m module args`` in a child with ``devstack`` importable; its result and peak RSS in bytes."""
    from devstack.stack import child_env

    done = subprocess.run(
        [sys.executable, "-m", "devstack.peak_rss", module, *args],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{module} {' '.join(args)} failed:\n{done.stderr}")
    return done, parse(done.stderr)


def main() -> int:
    module, *args = sys.argv[1:]
    sys.argv = [module, *args]
    code: int | str | None = 0
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as done:
        code = done.code
    print(f"peak-rss-bytes: {vm_hwm_bytes()}", file=sys.stderr)
    return code if isinstance(code, int) else 1


if __name__ == "__main__":
    sys.exit(main())
