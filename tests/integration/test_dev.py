"""``make dev`` as the README's local trial uses it: start it, send each recipe body it prints, follow the jobs.

The bodies are the README's recipes rendered for the seeded issue; each is sent as printed (the text between
``-d '`` and ``'``), and each job must succeed. The terminal shows one readable line per log entry, never a metric
document.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from devstack.stack import child_env

ROOT = Path(__file__).resolve().parents[2]


class DevStack:
    """``python -m devstack.dev`` as a child process, its output read on a thread."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "devstack.dev"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            cwd=ROOT,
            env=child_env({"PYTHONUNBUFFERED": "1"}),
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            assert self.process.poll() is None, f"make dev ended:\n{self.output}"
            assert time.monotonic() < deadline, f"no {text!r} in:\n{self.output}"
            time.sleep(0.1)

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        finally:
            self.process.kill() if self.process.poll() is None else None
            self._reader.join(timeout=5)


@pytest.fixture
def dev() -> Iterator[DevStack]:
    stack = DevStack()
    try:
        yield stack
    finally:
        if stack.process.poll() is None:
            stack.stop()


def finished(status_url: str, token: str, timeout: float = 20) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, object] = requests.get(
            status_url, headers={"Authorization": f"Bearer {token}"}, timeout=10
        ).json()
        if job["status"] in ("succeeded", "failed") or time.monotonic() > deadline:
            return job
        time.sleep(0.3)


def test_every_recipe_make_dev_prints_runs_as_printed(dev: DevStack) -> None:
    dev.wait_for("assets-attach doctor --object-id 1234")
    printed = dev.output
    url = re.search(r"^  webhook +(\S+)$", printed, re.MULTILINE)
    token = re.search(r"^  token +(\S+)$", printed, re.MULTILINE)
    bodies = re.findall(r"-d '(.*)'$", printed, re.MULTILINE)
    assert url and token, printed
    assert len(bodies) == 3, printed
    assert "export ASSETS_ATTACH_API_URL=" in printed and "export AWS_ENDPOINT_URL=" in printed

    headers = {"Authorization": f"Bearer {token.group(1)}", "Content-Type": "application/json"}
    for body in bodies:
        json.loads(body)  # valid JSON as printed, a summary with a quote in it included
        reply = requests.post(url.group(1), data=body.encode(), headers=headers, timeout=30)
        assert reply.status_code in (200, 202), (body, reply.text)
        job = finished(reply.json()["statusUrl"], token.group(1))
        assert job["status"] == "succeeded", job

    assert dev.stop() == 0
    assert "job accepted  jobId=" in dev.output
    assert "job finished  jobId=" in dev.output
    assert '"_aws"' not in dev.output  # no metric document on the terminal
