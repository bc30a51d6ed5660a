"""``make dev``: keep the local stack running, seeded for the README's recipes, and print how to call it with curl,
the CLI and the ``aws`` CLI. The webhook's and the worker's log lines show as one readable line each. Ctrl-C stops.

Seeded: Assets objects 1234 (HW-42) and 5678 (HW-43); Jira issue SUP-1 with two attachments; ``incoming/hello.txt``
in the uploads bucket. The Jira site, the Assets API and the media service are the simulator.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import sys
import threading
import time
from typing import Any

from assets_attach.observability import logger
from devstack.lambda_local import LocalApi
from devstack.stack import LocalStack, local_stack

OBJECTS = {"1234": "HW-42", "5678": "HW-43"}
ISSUE = "SUP-1"
# What the log lines show after their message, in this order, where present (never a credential: none is logged).
SHOWN_KEYS = ("jobId", "objectId", "issueKey", "status", "attachmentId", "step", "code", "error", "waitingFor")


class ReadableLines(io.TextIOBase):
    """Stands in for the handlers' log stream: each JSON log line becomes ``HH:MM:SS LEVEL message key=value ...``;
    metric documents (EMF) are left out."""

    def __init__(self, out: io.TextIOBase | Any) -> None:
        self._out = out

    def write(self, text: str) -> int:
        for line in text.splitlines():
            self._out.write(readable(line))
        self._out.flush()
        return len(text)


def readable(line: str) -> str:
    try:
        entry = json.loads(line)
    except ValueError:
        return line + "\n"
    if not isinstance(entry, dict) or "_aws" in entry:
        return ""
    at = time.strftime("%H:%M:%S")
    keys = " ".join(f"{k}={entry[k]}" for k in SHOWN_KEYS if entry.get(k) not in (None, ""))
    return f"{at} {entry.get('level', ''):<7} {entry.get('message', '')}  {keys}".rstrip() + "\n"


def seed(stack: LocalStack) -> list[str]:
    """What the recipes name: a Jira issue with two attachments, and a file in the bucket."""
    stack.client("s3").put_object(Bucket=stack.bucket, Key="incoming/hello.txt", Body=b"hello from make dev\n")
    return [
        stack.sim.add_jira_attachment(
            ISSUE, "Übergabeprotokoll.pdf", b"%PDF-1.7\nhanded over\n%%EOF\n", "application/pdf"
        ),
        stack.sim.add_jira_attachment(ISSUE, "Typenschild.png", b"\x89PNG\r\n\x1a\nrating plate", "image/png"),
    ]


def instructions(stack: LocalStack, api_url: str, attachment_ids: list[str]) -> str:
    env = stack.env()
    cli = {
        **{k: env[k] for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")},
        **{k: env[k] for k in ("ATLASSIAN_SECRET_ID", "ASSETS_API_BASE_URL", "MEDIA_ALLOWED_HOSTS")},
        "ASSETS_ATTACH_API_URL": api_url,
        "ASSETS_ATTACH_TOKEN": stack.webhook_token,
    }
    exports = "\n".join(f"  export {name}={value}" for name, value in cli.items())
    auth = f"-H 'Authorization: Bearer {stack.webhook_token}' -H 'Content-Type: application/json'"
    ids = ", ".join(attachment_ids)
    ws = stack.sim.workspace_id
    both = f'"objectId": "{ws}:1234, {ws}:5678", "jiraAttachments": "{ids}", "issueKey": "{ISSUE}", "wait": true'
    return f"""The local stack is up (Ctrl-C stops it).

  webhook      {api_url}/attachments
  token        {stack.webhook_token}
  bucket       {stack.bucket}  (incoming/hello.txt in it)
  Assets       objects 1234 (HW-42) and 5678 (HW-43), workspace {stack.sim.workspace_id}
  Jira         issue {ISSUE} with attachments {ids}
  simulator    {stack.sim.base_url}  (the Jira site, the Assets API and the media service)

The environment for the CLI (`assets-attach`) and the aws CLI, in another terminal:
{exports}

Try the README's recipes as a rule would send them:
  curl -s -X POST {api_url}/attachments {auth} \\
    -d '{{{both}}}'
  curl -s -X POST {api_url}/attachments {auth} \\
    -d '{{"objectId": "1234", "jiraAttachments": "all", "issueKey": "{ISSUE}"}}'
  curl -s -X POST {api_url}/attachments {auth} \\
    -d '{{"objectKey": "HW-42", "s3Uri": "s3://{stack.bucket}/incoming/hello.txt", "wait": true}}'
  aws s3 cp ./report.pdf s3://{stack.bucket}/attachments/HW-43/report.pdf   # an S3 drop
  assets-attach status <jobId>
  assets-attach doctor --object-id 1234
"""


def main() -> int:
    os.environ.update({"POWERTOOLS_LOG_LEVEL": "INFO", "POWERTOOLS_METRICS_DISABLED": "true"})
    with local_stack(OBJECTS) as stack, LocalApi() as api:
        logger.registered_handler.setStream(ReadableLines(sys.stdout))  # type: ignore[attr-defined]
        attachment_ids = seed(stack)
        worker = stack.worker().start()
        print(instructions(stack, api.url, attachment_ids), flush=True)
        stopped = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stopped.set())
        with contextlib.suppress(KeyboardInterrupt):
            stopped.wait()
        worker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
