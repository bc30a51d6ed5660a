"""``make demo``: the whole job on loopback, with no AWS account and no Atlassian site.

It starts a moto server (S3, SQS, DynamoDB, Secrets Manager), the Atlassian simulator, the webhook
behind a local API Gateway front and the worker polling the queue. Then, as a Jira Automation rule
would, it POSTs the webhook for a file with a non-ASCII name, follows the job's status URL until the
job ends, and shows what landed in Assets. Then it drops a file into the bucket under
``attachments/HW-42/`` and shows the S3 notification attach it. Last, as the rule "attachment added to a
request → copy it to the request's assets" would, it sends a Jira issue attachment to two objects with
``"wait": true`` and shows the answer the rule gets. Exits non-zero unless each attachment is there, once,
with the file's exact bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from typing import Any
from urllib.parse import quote

import requests

from assets_attach.observability import logger
from devstack.lambda_local import LocalApi
from devstack.stack import LocalStack, local_stack

SAMPLE_KEY = "incoming/Prüfbericht 2026 – 検査 ✓.pdf"
QUIET = {"POWERTOOLS_LOG_LEVEL": "ERROR", "POWERTOOLS_METRICS_DISABLED": "true"}


def sample_pdf() -> bytes:
    lines = [f"line {n}: the quick brown fox jumps over the lazy dog".encode() for n in range(20000)]
    return b"%PDF-1.7\n" + b"\n".join(lines) + b"\n%%EOF\n"


def follow(status_url: str, token: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    seen = None
    while True:
        job = requests.get(status_url, headers={"Authorization": f"Bearer {token}"}, timeout=10).json()
        if job["status"] != seen:
            print(f"  job status      {job['status']}")
            seen = job["status"]
        if job["status"] in ("succeeded", "failed") or time.monotonic() > deadline:
            return job
        time.sleep(0.2)


def run(stack: LocalStack, api_url: str) -> int:
    data = sample_pdf()
    stack.client("s3").put_object(Bucket=stack.bucket, Key=SAMPLE_KEY, Body=data, ContentType="application/pdf")
    print(f"put               s3://{stack.bucket}/{SAMPLE_KEY} ({len(data):,} bytes)")

    body = {
        "objectId": f"{stack.sim.workspace_id}:1234",  # as an Assets custom field gives it
        "s3Uri": f"s3://{stack.bucket}/{SAMPLE_KEY}",
        "comment": "Attached by the demo rule",
        "issueKey": "DEMO-1",
    }
    print(f"\nPOST {api_url}/attachments\n  {json.dumps(body, ensure_ascii=False)}")
    reply = requests.post(
        f"{api_url}/attachments", json=body, headers={"Authorization": f"Bearer {stack.webhook_token}"}, timeout=30
    )
    print(f"  → {reply.status_code} {reply.text}")
    if reply.status_code != 202:
        return 1
    job = follow(reply.json()["statusUrl"], stack.webhook_token)
    if job["status"] != "succeeded":
        print(f"FAILED: {json.dumps(job, indent=2)}", file=sys.stderr)
        return 1

    attachments = stack.sim.attachments("1234")
    if len(attachments) != 1:
        print(f"FAILED: object 1234 holds {len(attachments)} attachments, not 1", file=sys.stderr)
        return 1
    attachment = attachments[0]
    matches = attachment.sha256 == hashlib.sha256(data).hexdigest() and attachment.size == len(data)
    print("\nWhat landed in Assets")
    print("  object          1234 (HW-42)")
    print(f"  attachment id   {attachment.id} (job {job['jobId']})")
    print(f"  file name       {attachment.filename}")
    print(f"  size            {attachment.size:,} bytes")
    print(f"  content type    {attachment.mime_type}")
    print(f"  comment         {attachment.comment}")
    print(f"  sha256          {attachment.sha256} ({'matches' if matches else 'DIFFERS from'} the S3 object)")
    if not (matches and attachment.filename == SAMPLE_KEY.rsplit("/", 1)[-1]):
        return 1
    return drop_into_bucket(stack) or jira_attachment_to_two_objects(stack, api_url)


def drop_into_bucket(stack: LocalStack) -> int:
    """The other way in: a file put under attachments/<objectKey>/ is attached by the S3 notification."""
    key = "attachments/HW-42/Lieferschein März.csv"
    data = b"item;qty\nSSD 2TB;4\n"
    print(f"\nput               s3://{stack.bucket}/{key} (no webhook: the S3 notification does it)")
    stack.client("s3").put_object(
        Bucket=stack.bucket, Key=key, Body=data, Metadata={"assets-comment": quote("Dropped into the bucket")}
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        landed = [a for a in stack.sim.attachments("1234") if a.filename == "Lieferschein März.csv"]
        if landed:
            attachment = landed[0]
            ok = attachment.sha256 == hashlib.sha256(data).hexdigest()
            print(f"  attached        {attachment.filename} ({attachment.size} bytes, {attachment.mime_type})")
            print(f"  comment         {attachment.comment}")
            print(f"  sha256          {'matches' if ok else 'DIFFERS from'} the S3 object")
            print(f"\nobject 1234 now holds {len(stack.sim.attachments('1234'))} attachments")
            return 0 if ok else 1
        time.sleep(0.2)
    print("FAILED: the dropped file was not attached within 60 s", file=sys.stderr)
    return 1


def jira_attachment_to_two_objects(stack: LocalStack, api_url: str) -> int:
    """A Jira issue's attachment onto two Assets objects (as a multi-object Assets field names them), waiting."""
    data = b"\x89PNG\r\n\x1a\n" + os.urandom(150_000)
    attachment_id = stack.sim.add_jira_attachment("SUP-7", "Typenschild.png", data, "image/png")
    print(f"\nJira issue SUP-7 gets an attachment: Typenschild.png ({len(data):,} bytes, id {attachment_id})")
    ws = stack.sim.workspace_id
    body = {"objectId": f"{ws}:1234, {ws}:5678", "jiraAttachments": [attachment_id], "issueKey": "SUP-7", "wait": True}
    print(f"POST {api_url}/attachments\n  {json.dumps(body)}")
    reply = requests.post(
        f"{api_url}/attachments", json=body, headers={"Authorization": f"Bearer {stack.webhook_token}"}, timeout=30
    )
    job = reply.json()
    print(f"  → {reply.status_code} job {job.get('jobId')} {job.get('status')}")
    for file in job.get("files", []):
        attached = f"attachment {file.get('attachmentId')}"
        print(f"    object {file['objectId']:<6} {file['filename']}  {file['status']}  {attached}")
    if reply.status_code != 200:
        print(f"FAILED: {reply.text}", file=sys.stderr)
        return 1
    digest = hashlib.sha256(data).hexdigest()
    for object_id in ("1234", "5678"):
        copies = [a for a in stack.sim.attachments(object_id) if a.filename == "Typenschild.png"]
        if len(copies) != 1 or copies[0].sha256 != digest or copies[0].mime_type != "image/png":
            print(f"FAILED: object {object_id} does not hold exactly one copy of the file", file=sys.stderr)
            return 1
        print(f"  object {object_id} holds Typenschild.png once, sha256 matches the Jira attachment")
    return 0


def main() -> int:
    os.environ.update(QUIET)
    logger.setLevel(
        QUIET["POWERTOOLS_LOG_LEVEL"]
    )  # the package's logger may be built already (it reads the level once)
    with local_stack({"1234": "HW-42", "5678": "HW-43"}) as stack, LocalApi() as api:
        print(f"moto server       {stack.moto_url}")
        print(f"Atlassian sim     {stack.sim.base_url}  (workspace {stack.sim.workspace_id})")
        print(f"webhook           {api.url}/attachments")
        worker = stack.worker().start()
        try:
            return run(stack, api.url)
        finally:
            worker.stop()


if __name__ == "__main__":
    sys.exit(main())
