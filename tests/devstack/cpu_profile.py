"""Where a run's time goes: a module run as ``python -m`` would, under cProfile, in every thread.

``python -m devstack.cpu_profile {cpu|wall} OUT MODULE ARGS...`` writes pstats to OUT. ``cpu`` times each call by
its thread's CPU time (``time.thread_time``: a thread blocked on a socket or a lock costs nothing), ``wall`` by the
clock (the fixed cost of a job: imports, HEAD, credentials, link). Python 3.11 profiles one thread per profiler,
so each thread gets its own and they are merged; from 3.12 on the one profiler (``sys.monitoring``) sees every
thread. :func:`top` and :func:`cumulative` read the result.
"""

from __future__ import annotations

import cProfile
import pstats
import runpy
import sys
import threading
import time
from pathlib import Path

_profiles: list[cProfile.Profile] = []


def _profiler(clock: str) -> cProfile.Profile:
    return cProfile.Profile(time.thread_time if clock == "cpu" else time.perf_counter)


def _profile_threads(clock: str) -> None:
    run = threading.Thread.run

    def profiled(self: threading.Thread) -> None:
        profile = _profiler(clock)
        try:
            profile.enable()
        except ValueError:  # Python 3.12+: the main profiler already sees this thread
            run(self)
            return
        _profiles.append(profile)
        try:
            run(self)
        finally:
            profile.disable()

    threading.Thread.run = profiled  # type: ignore[method-assign]


def top(path: str | Path, count: int) -> list[tuple[str, float]]:
    """The ``count`` functions that took the most time of their own, with their share of the total."""
    stats = pstats.Stats(str(path))
    entries = stats.stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in entries.values()) or 1.0
    ranked = sorted(entries.items(), key=lambda item: item[1][2], reverse=True)[:count]
    return [(_name(key), entry[2] / total) for key, entry in ranked]


def cumulative(path: str | Path, file_suffix: str, function: str) -> float:
    """Seconds spent in ``function`` of a file ending in ``file_suffix``, callees included (0 if never called)."""
    entries = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    return sum(e[3] for (f, _, name), e in entries.items() if name == function and f.endswith(file_suffix))


def _name(key: tuple[str, int, str]) -> str:
    file, _, function = key
    if file == "~":  # a built-in: "<method 'update' of '_hashlib.HASH' objects>"
        return function.strip("<>").replace("method ", "").replace("built-in ", "")
    return f"{Path(file).stem}.{function}"


def main() -> int:
    clock, out, module, *args = sys.argv[1:]
    sys.argv = [module, *args]
    _profile_threads(clock)
    main_profile = _profiler(clock)
    code: int | str | None = 0
    main_profile.enable()
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as done:
        code = done.code
    finally:
        main_profile.disable()
    stats = pstats.Stats(main_profile)
    for profile in _profiles:
        stats.add(profile)
    stats.dump_stats(out)
    return code if isinstance(code, int) else 1


if __name__ == "__main__":
    sys.exit(main())
