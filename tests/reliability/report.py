"""Figures and the table they are printed in."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Figure:
    """One measured figure, the goal it is held to, and whether it met it."""

    section: str
    name: str
    value: str
    goal: str
    ok: bool
    detail: str = ""


@dataclass
class Report:
    figures: list[Figure] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)  # the closing line's parts, in order

    def add(self, figure: Figure, *, summary: str | None = None) -> None:
        self.figures.append(figure)
        if summary:
            self.summary.append(summary)

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.figures)

    def table(self) -> str:
        rows = [("section", "figure", "value", "goal", "")] + [
            (f.section, f.name, f.value, f.goal, "ok" if f.ok else "BROKEN") for f in self.figures
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(5)]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        details = [f"  {f.section} / {f.name}: {f.detail}" for f in self.figures if f.detail and not f.ok]
        return "\n".join(lines + (["", "what broke:", *details] if details else []))

    def closing_line(self) -> str:
        return ", ".join(self.summary)
