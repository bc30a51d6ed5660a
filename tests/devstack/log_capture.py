"""Capture what the Powertools loggers write, as Lambda would print it."""

from __future__ import annotations

import logging


class CapturedLogs(logging.Handler):
    """Every line the Powertools loggers write, formatted as Lambda would print it."""

    def __init__(self, formatter: logging.Formatter) -> None:
        super().__init__()
        self.setFormatter(formatter)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)
