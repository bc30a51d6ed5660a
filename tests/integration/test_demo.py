"""The README's first command: ``make demo`` runs the whole path and proves the attachment landed."""

from __future__ import annotations

import subprocess
import sys

from devstack.stack import child_env


def test_demo_attaches_the_file_through_webhook_queue_and_worker() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "devstack.demo"],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "→ 202" in done.stdout
    assert "job status      succeeded" in done.stdout
    assert "matches the S3 object" in done.stdout
    assert "Prüfbericht 2026 – 検査 ✓.pdf" in done.stdout
    assert "attached        Lieferschein März.csv" in done.stdout
    assert "object 1234 now holds 2 attachments" in done.stdout
    assert "→ 200 job" in done.stdout and "succeeded" in done.stdout
    for object_id in ("1234", "5678"):
        assert f"object {object_id} holds Typenschild.png once, sha256 matches the Jira attachment" in done.stdout
