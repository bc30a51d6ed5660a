"""A signed download URL's query never reaches an X-Ray trace (issue 18 §5): the real X-Ray recorder, with its
requests patch, records a failed call to the media host through the package's session; the segment it would
emit is captured and read. In a process of its own, as the patch changes ``requests`` for good."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PROBE = """
import socket
from aws_xray_sdk.core import patch, xray_recorder
from aws_xray_sdk.core.emitters.udp_emitter import UDPEmitter

class Capture(UDPEmitter):
    sent = []

    def send_entity(self, entity):
        self.sent.append(entity.serialize())

xray_recorder.configure(emitter=Capture(), sampling=False, context_missing="LOG_ERROR", plugins=(), service="t")
patch(["requests"])
from assets_attach.atlassian.http_session import new_session

with socket.socket() as s:  # a port nothing listens on: the media host unreachable after Jira's redirect
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
xray_recorder.begin_segment("worker")
try:
    new_session().get(f"http://127.0.0.1:{port}/media/file/1/binary?token=SIGNED-DOWNLOAD-JWT&client=c", timeout=2)
except Exception:
    pass
xray_recorder.end_segment()
print(Capture.sent[-1])
"""


def test_an_unreachable_media_host_leaves_no_download_token_in_the_trace() -> None:
    functions = Path(__file__).resolve().parents[2] / "functions"
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(functions), "AWS_XRAY_SDK_ENABLED": "true"},
        timeout=60,
        check=True,
    )
    segment = json.loads(done.stdout.strip().splitlines()[-1])
    [call] = segment["subsegments"]
    assert call["cause"]["exceptions"], "the failed call was recorded with its exception"
    assert "SIGNED-DOWNLOAD-JWT" not in done.stdout + done.stderr
    assert "?<query removed>" in json.dumps(call["cause"])
