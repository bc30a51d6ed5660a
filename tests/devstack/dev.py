"""``make dev``: keep the local stack running, seeded for the README's recipes, and print how to call it with curl,
the CLI and the ``aws`` CLI. The webhook's and the worker's log lines show as one readable line each. Ctrl-C stops.

Seeded: Assets objects 1234 (HW-42) and 5678 (HW-43); Jira issue SUP-1 with two attachments, whose Assets field holds
both objects; ``incoming/hello.txt`` in the uploads bucket; ``reports/SUP-1/report.pdf`` in bucket ``my-exports``,
which the webhook allows. The Jira site, the Assets API and the media service are the simulator. The recipes' bodies
are the README's, rendered for SUP-1 as Jira renders them (``devstack.recipes``).
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
from devstack.recipes import WEBHOOK_RECIPES, recipe, rendered_values
from devstack.stack import LocalStack, local_stack

OBJECTS = {"1234": "HW-42", "5678": "HW-43"}
ISSUE = "SUP-1"
SUMMARY = 'Pump "P-7" replaced'  # as the issue's summary, rendered with .jsonEncode by the recipes
EXPORTS = "my-exports"  # recipe 3's bucket
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
    """What the recipes name: a Jira issue with two attachments, a file in the bucket, recipe 3's report."""
    s3 = stack.client("s3")
    s3.put_object(Bucket=stack.bucket, Key="incoming/hello.txt", Body=b"hello from make dev\n")
    s3.create_bucket(Bucket=EXPORTS)
    s3.put_object(
        Bucket=EXPORTS,
        Key=f"reports/{ISSUE}/report.pdf",
        Body=b"%PDF-1.7\nreport\n%%EOF\n",
        ContentType="application/pdf",
    )
    os.environ["ALLOWED_BUCKETS"] = f"{stack.bucket},{EXPORTS}"  # read when the webhook first runs
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
    values = rendered_values(ISSUE, SUMMARY, list(OBJECTS), attachment_ids)
    bodies = [json.dumps(json.loads(recipe(name, values)), ensure_ascii=False) for name in WEBHOOK_RECIPES]
    curls = "\n".join(
        f"  # recipe {number}\n  curl -s -X POST {api_url}/attachments {auth} \\\n    -d '{body}'"
        for number, body in enumerate(bodies, start=1)
    )
    return f"""The local stack is up (Ctrl-C stops it).

  webhook      {api_url}/attachments
  token        {stack.webhook_token}
  bucket       {stack.bucket}  (incoming/hello.txt in it)
  Assets       objects 1234 (HW-42) and 5678 (HW-43), workspace {stack.sim.workspace_id}
  Jira         issue {ISSUE} with attachments {ids}
  exports      s3://{EXPORTS}/reports/{ISSUE}/report.pdf  (recipe 3)
  simulator    {stack.sim.base_url}  (the Jira site, the Assets API and the media service)

The environment for the CLI (`assets-attach`) and the aws CLI, in another terminal:
{exports}

The README's recipes as a rule sends them for {ISSUE} (summary {SUMMARY}, Assets field 1234 and 5678):
{curls}
  aws s3 cp ./report.pdf s3://{stack.bucket}/attachments/HW-43/report.pdf   # recipe 4, an S3 drop
  assets-attach status <jobId>
  assets-attach jobs --issue-key {ISSUE}
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
