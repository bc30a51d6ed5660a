"""Each crash point wraps one of the package's functions by name: a rename there fails here, in seconds, and not
as a kill that never happens in ``make reliability``."""

from __future__ import annotations

import subprocess
import sys

from devstack.stack import child_env
from reliability.crash_points import HOOKS, POINTS

ARM_ALL = "import sys; from reliability import crash_points; [crash_points.arm(name) for name in sys.argv[1:]]"


def test_every_crash_point_and_fault_hook_installs() -> None:
    # In a child process: an armed point stays in the process it was installed in.
    result = subprocess.run(
        [sys.executable, "-c", ARM_ALL, *POINTS, *HOOKS], env=child_env(), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
