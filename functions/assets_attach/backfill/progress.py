"""How far a backfill got: one line redrawn on a terminal, plain lines (at most one per interval) elsewhere."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

from .state import State


class Progress:
    def __init__(
        self,
        out: TextIO,
        total_rows: int,
        *,
        tty: bool,
        interval: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._out = out
        self._total = total_rows
        self._tty = tty
        self._interval = interval if tty else max(interval, 10.0)
        self._clock = clock
        self._started = clock()
        self._shown = float("-inf")
        self._first_done: int | None = None  # files finished before this run, for the rate

    def line(self, state: State) -> str:
        done = state.attached + state.failed
        if self._first_done is None:
            self._first_done = done
        elapsed = max(self._clock() - self._started, 1e-6)
        rate = (done - self._first_done) / elapsed * 60
        left = self._total - done
        eta = f"{left / rate:,.0f} min left" if rate > 0 and left > 0 else "--"
        return (
            f"{state.rows_sent:,}/{self._total:,} rows sent, {state.attached:,} attached, {state.failed:,} failed, "
            f"{state.bytes_attached / 2**20:,.1f} MiB, {rate:,.0f} files/min, {eta}"
        )

    def show(self, state: State, *, force: bool = False) -> None:
        now = self._clock()
        if not force and now - self._shown < self._interval:
            return
        self._shown = now
        text = self.line(state)
        self._out.write(f"\r\x1b[2K{text}" if self._tty else f"{text}\n")
        self._out.flush()

    def note(self, text: str) -> None:
        """A line of its own (a refused row), above the bar on a terminal."""
        self._out.write(f"\r\x1b[2K{text}\n" if self._tty else f"{text}\n")
        self._out.flush()
        self._shown = float("-inf")

    def end(self, state: State) -> None:
        self.show(state, force=True)
        if self._tty:
            self._out.write("\n")
            self._out.flush()
