"""Regression tests for an adversarial review: each promise held at an edge where it once broke.

Foreign workspace prefixes, unsafe file names, hostile JSON, over-long keys, content types that cannot go on
the wire, defects that would be retried to the dead-letter queue, and S3 drops that could not become a job.
(Hostile media URLs: test_hostile_media_url.py; look-alike attachments: test_link_race.py.)
"""

from __future__ import annotations

import hashlib
import json
import time
from urllib.parse import quote

import pytest
from integration.test_s3_trigger import job_of

from assets_attach.atlassian import multipart
from assets_attach.core import retry_policy, s3_drop
from assets_attach.errors import AttachError
from devstack.lambda_local import LocalWorker
from devstack.log_capture import CapturedLogs
from devstack.stack import LocalStack
from devstack.webhook_client import job_status, post


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retry_policy, "BACKOFF_BASE_SECONDS", 0.05)


def refused(reply: object, status: int, field: str) -> None:
    assert getattr(reply, "status_code", None) == status, getattr(reply, "text", reply)
    error = reply.json()["error"]  # type: ignore[attr-defined]
    assert error["field"] == field and error["message"] and error["code"]


def test_an_object_id_with_another_workspaces_prefix_is_refused(stack: LocalStack, api: str) -> None:
    stack.put("attachments/a.txt", b"a")
    body = {"objectId": "someone-elses-workspace:1234", "s3Uri": f"s3://{stack.bucket}/attachments/a.txt"}
    refused(post(api, stack, body), 400, "objectId")
    ours = {**body, "objectId": f"{stack.sim.workspace_id}:1234"}
    assert post(api, stack, ours).status_code == 202


@pytest.mark.parametrize(
    ("filename", "field"),
    [("Report\r\nX-Injected: 1.pdf", "filename"), ("a\x00.pdf", "filename"), ("../../etc/passwd", "filename"),
     ("C:\\temp\\x.pdf", "filename"), ("tab\there.pdf", "filename")],
)  # fmt: skip
def test_unsafe_file_names_are_refused_by_the_webhook(stack: LocalStack, api: str, filename: str, field: str) -> None:
    stack.put("attachments/a.txt", b"a")
    body = {"objectId": "1234", "s3Uri": f"s3://{stack.bucket}/attachments/a.txt", "filename": filename}
    refused(post(api, stack, body), 400, field)


def test_hostile_json_gets_a_400_not_a_500(stack: LocalStack, api: str) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    refused(post(api, stack, None, raw=deep), 400, "body")
    refused(post(api, stack, None, raw='{"objectId": "\\ud800", "s3Uri": "s3://b/k"}'), 400, "body")
    nested = json.dumps({"objectId": 1, "s3Uri": "s3://b/k", "comment": [[[[["x"]]]]]})
    refused(post(api, stack, None, raw=nested), 400, "comment")


def test_an_over_long_key_is_refused_before_any_s3_call(stack: LocalStack, api: str) -> None:
    key = "attachments/" + "ü" * 510 + ".pdf"  # 500-odd characters, over 1,024 UTF-8 bytes
    refused(post(api, stack, {"objectId": "1234", "bucket": stack.bucket, "key": key}), 400, "key")
    uri = f"s3://{stack.bucket}/attachments/{'k' * 1020}"
    refused(post(api, stack, {"objectId": "1234", "s3Uri": uri}), 400, "s3Uri")


def test_a_content_type_that_cannot_go_on_the_wire_falls_back_to_the_name(
    stack: LocalStack, api: str, worker: LocalWorker
) -> None:
    stack.put("attachments/Bericht.pdf", b"%PDF-1.7", "application/pdf; name=Pr\u00fcfbericht")
    reply = post(api, stack, {"objectId": "1234", "s3Uri": f"s3://{stack.bucket}/attachments/Bericht.pdf"}).json()

    worker.drain()

    assert job_status(stack, reply["statusUrl"])["status"] == "succeeded"
    [attachment] = stack.sim.attachments("1234")
    assert attachment.mime_type == "application/pdf"
    assert worker.invocations == 1


def test_a_defect_fails_the_file_at_once_instead_of_retrying_to_the_dlq(
    stack: LocalStack, api: str, worker: LocalWorker, monkeypatch: pytest.MonkeyPatch, logs: CapturedLogs
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise UnicodeEncodeError("ascii", "ä", 0, 1, "ordinal not in range(128)")

    monkeypatch.setattr(multipart.MultipartBody, "__init__", broken)
    stack.put("attachments/a.txt", b"a")
    reply = post(api, stack, {"objectId": "1234", "s3Uri": f"s3://{stack.bucket}/attachments/a.txt"}).json()

    worker.drain()

    job = job_status(stack, reply["statusUrl"])
    assert job["status"] == "failed"
    assert job["files"][0]["errorCode"] == "internal_error"
    assert "UnicodeEncodeError" in job["files"][0]["error"]
    assert worker.invocations == 1 and stack.queue_depth(stack.dlq_url) == 0
    assert stack.sim.attachments("1234") == []
    assert "Traceback" in logs.text  # the defect is logged with what to fix


def test_s3_drop_names_are_repaired_and_the_repair_logged(
    stack: LocalStack, api: str, worker: LocalWorker, logs: CapturedLogs
) -> None:
    stack.enable_s3_notifications()
    key = "attachments/inbox/scan.pdf"
    stack.put(key, b"%PDF", **{"assets-object-id": "1234", "assets-filename": quote("Lieferschein\r\n../März.pdf")})

    worker.drain()

    [attachment] = stack.sim.attachments("1234")
    assert attachment.filename == "Lieferschein__.._März.pdf"
    assert "replaced" in logs.text
    assert job_of(stack, api, key)["files"][0]["filename"] == "Lieferschein__.._März.pdf"


def test_an_s3_drop_naming_another_workspaces_object_is_skipped_with_the_reason(
    stack: LocalStack, worker: LocalWorker, logs: CapturedLogs
) -> None:
    stack.enable_s3_notifications()
    stack.put("attachments/inbox/a.pdf", b"%PDF", **{"assets-object-id": "other-workspace:1234"})
    worker.drain()
    assert stack.sim.attachments("1234") == []
    assert "another Assets workspace" in logs.text


def test_an_s3_drop_that_never_becomes_a_job_leaves_a_failed_job_saying_why(
    stack: LocalStack, api: str, worker: LocalWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    def s3_is_down(*args: object, **kwargs: object) -> None:
        raise AttachError("S3 answered SlowDown for the object", step="s3-head", retryable=True)

    stack.enable_s3_notifications()
    worker.drain()  # S3's test event
    monkeypatch.setattr(s3_drop, "decide", s3_is_down)
    key = "attachments/1234/a.pdf"
    stack.put(key, b"%PDF")

    deadline = time.monotonic() + 30
    while stack.queue_depth(stack.dlq_url) == 0 and time.monotonic() < deadline:
        worker.poll_once(wait_seconds=1)

    assert stack.queue_depth(stack.dlq_url) == 1
    job = job_of(stack, api, key)
    assert job["status"] == "failed"
    assert f"gave up after {stack.max_receive_count} attempts" in job["error"]
    assert "SlowDown" in job["error"]
    assert job["files"] == [{"bucket": stack.bucket, "key": key, "filename": "a.pdf", "status": "pending"}]
    assert stack.sim.attachments("1234") == []

    monkeypatch.undo()  # S3 is back: the message, moved back from the DLQ, runs the job after all
    sqs = stack.client("sqs")
    [dead] = sqs.receive_message(QueueUrl=stack.dlq_url, MaxNumberOfMessages=1)["Messages"]
    sqs.send_message(QueueUrl=stack.queue_url, MessageBody=dead["Body"])
    worker.drain()
    assert job_of(stack, api, key)["status"] == "succeeded"
    [attachment] = stack.sim.attachments("1234")
    assert attachment.sha256 == hashlib.sha256(b"%PDF").hexdigest()


def test_a_request_too_large_to_record_is_refused_with_its_reason_not_retried(stack: LocalStack, api: str) -> None:
    """Ten files on five objects with 2,000-character comments: each within its limit, together over what one job
    record holds (DynamoDB's 400 KB item). Once answered 503 "try again", which could never succeed."""
    for i in range(10):
        stack.put(f"in/f{i}.txt", b"x")
    files = [{"s3Uri": f"s3://{stack.bucket}/in/f{i}.txt", "comment": "😀" * 2000} for i in range(10)]
    objects = ["1234", "1235", "1236", "1237", "1238"]
    reply = post(api, stack, {"objectId": objects, "files": files})
    refused(reply, 400, "comment")
    assert "shorten the comments" in reply.json()["error"]["message"]

    for file in files:
        file["comment"] = "😀" * 200
    assert post(api, stack, {"objectId": objects, "files": files}).status_code == 202
