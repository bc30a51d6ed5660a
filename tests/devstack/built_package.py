"""A function's directory as `sam build` leaves it: its distributions, and this machine's builds of the compiled
ones, so that the package can be imported here even when it was built for another architecture (arm64 on x86_64)."""

from __future__ import annotations

import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Distribution:
    name: str
    version: str
    tags: tuple[str, ...]
    purelib: bool


def distributions_in(code_dir: Path) -> list[Distribution]:
    dists = []
    for info in sorted(code_dir.glob("*.dist-info")):
        fields: dict[str, list[str]] = {}
        for source in ("METADATA", "WHEEL"):
            path = info / source
            if not path.exists():
                continue
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                if not line.strip():
                    break  # the METADATA headers end at the first blank line
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), []).append(value.strip())
        name = fields.get("Name", [info.name.split("-")[0]])[0]
        version = fields.get("Version", [""])[0]
        purelib = fields.get("Root-Is-Purelib", ["true"])[0].lower() == "true"
        dists.append(Distribution(name, version, tuple(fields.get("Tag", [])), purelib))
    return dists


class HostBinaries:
    """This machine's wheels of compiled distributions, same versions as the build's, installed once per set."""

    def __init__(self, python: str, scratch: Path) -> None:
        self._python = python
        self._scratch = scratch
        self._installed: dict[tuple[str, ...], Path] = {}

    def directory_for(self, dists: list[Distribution]) -> Path:
        pins = tuple(sorted(f"{d.name}=={d.version}" for d in dists))
        if pins not in self._installed:
            target = self._scratch / f"host-binaries-{len(self._installed)}"
            pip = [self._python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
            command = [*pip, "--root-user-action=ignore", "--no-deps", "--only-binary=:all:", "--target", str(target)]
            command += pins
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise SystemExit(f"check_build: could not install {' '.join(pins)} for this machine:\n{done.stderr}")
            self._installed[pins] = target
        return self._installed[pins]


def foreign_binaries(code_dir: Path) -> list[Distribution]:
    """The compiled distributions in ``code_dir`` that were not built for this machine."""
    return [d for d in distributions_in(code_dir) if not d.purelib and platform.machine() not in " ".join(d.tags)]
