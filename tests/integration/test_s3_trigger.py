"""Files dropped into the uploads bucket become attachments: S3 notifies SQS (moto does it for real, as the
template wires it), the worker reads the object's metadata or key and attaches it once."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
import requests

from assets_attach.core import s3_drop
from devstack import peak_rss
from devstack.atlassian_sim import AtlassianSimulator
from devstack.bigfile import MiB, put_big_object
from devstack.lambda_local import LambdaContext, LocalWorker, load_event
from devstack.log_capture import CapturedLogs
from devstack.stack import LocalStack


@pytest.fixture
def dropping(stack: LocalStack, worker: LocalWorker, logs: CapturedLogs) -> LocalStack:
    stack.enable_s3_notifications()
    worker.drain()  # S3's test event, sent when the notification is configured
    assert "ignoring S3's test event" in logs.text
    worker.invocations = 0
    return stack


def job_of(stack: LocalStack, api: str, key: str) -> dict[str, Any]:
    head = stack.client("s3").head_object(Bucket=stack.bucket, Key=key)
    job_id = s3_drop.Drop(stack.bucket, key, None, None, head["ETag"].strip('"')).job_id
    reply = requests.get(
        f"{api}/attachments/jobs/{job_id}", headers={"Authorization": f"Bearer {stack.webhook_token}"}, timeout=30
    )
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_key_route_with_an_object_id_and_a_unicode_name(
    dropping: LocalStack, worker: LocalWorker, api: str, logs: CapturedLogs
) -> None:
    key = "attachments/1234/Prüfbericht Q3 – 検査 + notes.pdf"
    dropping.put(key, b"%PDF-1.7 report")

    worker.drain()

    [attachment] = dropping.sim.attachments("1234")
    assert attachment.filename == "Prüfbericht Q3 – 検査 + notes.pdf"
    assert attachment.mime_type == "application/pdf"
    job = job_of(dropping, api, key)
    assert job["status"] == "succeeded" and job["files"][0]["attachmentId"] == str(attachment.id)


def test_key_route_with_an_object_key_resolved_through_aql(dropping: LocalStack, worker: LocalWorker) -> None:
    dropping.put("attachments/HW-42/photo.jpg", b"\xff\xd8\xff")
    worker.drain()
    [attachment] = dropping.sim.attachments("1234")
    assert (attachment.filename, attachment.mime_type) == ("photo.jpg", "image/jpeg")


def test_metadata_route_with_name_and_comment(dropping: LocalStack, worker: LocalWorker) -> None:
    dropping.put(
        "attachments/inbox/scan-0001.pdf",
        b"%PDF",
        **{
            "assets-object-key": "HW-42",
            "assets-filename": quote("Lieferschein März.pdf"),
            "assets-comment": quote("Geprüft ✓"),
        },
    )
    worker.drain()
    [attachment] = dropping.sim.attachments("1234")
    assert attachment.filename == "Lieferschein März.pdf"
    assert attachment.comment == "Geprüft ✓"


@pytest.mark.parametrize(
    "metadata",
    [{"assets-object-id": "1234, sim-workspace:5678"}, {"assets-object-key": "HW-42 HW-43"}],
    ids=["ids", "keys"],
)
def test_metadata_naming_several_objects_attaches_to_each(
    dropping: LocalStack, worker: LocalWorker, api: str, metadata: dict[str, str]
) -> None:
    dropping.sim.add_object("5678", "HW-43")
    key = "attachments/inbox/both.pdf"
    dropping.put(key, b"%PDF-1.7 both", **metadata)

    worker.drain()

    for object_id in ("1234", "5678"):
        assert [a.filename for a in dropping.sim.attachments(object_id)] == ["both.pdf"]
    job = job_of(dropping, api, key)
    assert [(f["objectId"], f["status"]) for f in job["files"]] == [("1234", "attached"), ("5678", "attached")]


def test_a_duplicate_event_attaches_nothing_new(dropping: LocalStack, worker: LocalWorker) -> None:
    key = "attachments/1234/once.txt"
    dropping.put(key, b"once")
    sqs = dropping.client("sqs")
    [message] = sqs.receive_message(QueueUrl=dropping.queue_url, VisibilityTimeout=0).get("Messages", [])
    sqs.send_message(QueueUrl=dropping.queue_url, MessageBody=message["Body"])  # S3 delivers at least once

    worker.drain()

    assert len(dropping.sim.attachments("1234")) == 1
    assert dropping.queue_depth(dropping.queue_url) == 0


@pytest.mark.parametrize(
    "key", ["attachments/readme.txt", "attachments/not an object/file.txt", "elsewhere/1234/file.txt"]
)
def test_an_object_that_names_no_assets_object_is_skipped_without_retry(
    dropping: LocalStack, worker: LocalWorker, logs: CapturedLogs, key: str
) -> None:
    dropping.put(key, b"x")
    if key.startswith("elsewhere/"):  # the notification filter would not send it; the worker checks too
        dropping.client("sqs").send_message(
            QueueUrl=dropping.queue_url, MessageBody=s3_event_body(dropping.bucket, key)
        )

    worker.drain()

    assert dropping.sim.attachments("1234") == []
    assert dropping.queue_depth(dropping.queue_url) == 0 and dropping.queue_depth(dropping.dlq_url) == 0
    assert "skipping an S3 object" in logs.text


def test_an_object_id_that_does_not_exist_fails_its_job_without_retry(
    dropping: LocalStack, worker: LocalWorker, api: str
) -> None:
    dropping.put("attachments/999/x.txt", b"x")
    worker.drain()
    job = job_of(dropping, api, "attachments/999/x.txt")
    assert job["status"] == "failed" and "999" in job["files"][0]["error"]
    assert worker.invocations == 1
    assert dropping.queue_depth(dropping.queue_url) == 0 and dropping.queue_depth(dropping.dlq_url) == 0


def s3_event_body(bucket: str, key: str) -> str:
    """The body of events/worker_sqs_s3_put.json, pointed at another bucket and key."""
    body = json.loads(load_event("worker_sqs_s3_put.json")["Records"][0]["body"])
    obj = body["Records"][0]["s3"]
    obj["bucket"]["name"] = bucket
    obj["object"].update({"key": quote(key, safe="/").replace("%20", "+"), "versionId": None, "eTag": None})
    return json.dumps(body)


def test_the_sample_events_as_s3_sends_them(stack: LocalStack) -> None:
    """events/: an S3 put with a URL-encoded key (``+`` for space, UTF-8 escapes), and S3's test event."""
    from assets_attach.handlers import worker as worker_module

    event = load_event("worker_sqs_s3_put.json")
    body = json.loads(event["Records"][0]["body"])
    s3 = body["Records"][0]["s3"]
    s3["bucket"]["name"] = stack.bucket
    key = "attachments/HW-42/Prüfbericht Q3 – 検査.pdf"
    assert [d.key for d in s3_drop.drops(body)] == [key]
    put = stack.client("s3").put_object(Bucket=stack.bucket, Key=key, Body=b"%PDF")
    s3["object"].update({"versionId": put["VersionId"], "eTag": put["ETag"].strip('"')})
    event["Records"][0]["body"] = json.dumps(body)

    assert worker_module.lambda_handler(event, LambdaContext()) == {"batchItemFailures": []}
    assert [a.filename for a in stack.sim.attachments("1234")] == ["Prüfbericht Q3 – 検査.pdf"]
    assert worker_module.lambda_handler(load_event("worker_sqs_s3_test_event.json"), LambdaContext()) == {
        "batchItemFailures": []
    }


def drain_in_a_child() -> int:
    """Run the worker over the queue in its own process; its peak RSS in bytes."""
    return peak_rss.run_measured("devstack.worker_once")[1]


@pytest.mark.slow
def test_a_large_drop_is_streamed(dropping: LocalStack, sim: AtlassianSimulator) -> None:
    s3 = dropping.client("s3")
    small_sha = put_big_object(s3, dropping.bucket, "attachments/1234/small.zip", MiB)
    small_rss = drain_in_a_child()
    big_sha = put_big_object(s3, dropping.bucket, "attachments/1234/big.zip", 512 * MiB)
    big_rss = drain_in_a_child()

    landed = {a.filename: a for a in sim.attachments("1234")}
    assert (landed["small.zip"].size, landed["small.zip"].sha256) == (MiB, small_sha)
    assert (landed["big.zip"].size, landed["big.zip"].sha256) == (512 * MiB, big_sha)
    print(f"worker peak RSS: 1 MiB drop {small_rss / MiB:.1f} MiB, 512 MiB drop {big_rss / MiB:.1f} MiB")
    assert big_rss - small_rss <= 64 * MiB


def test_a_drop_naming_several_objects_redriven_after_its_failure_attaches_to_each(
    dropping: LocalStack, worker: LocalWorker, api: str
) -> None:
    """Issue 18 §6: a drop that failed for good leaves a failed job record of one entry (its objects unknown then);
    redriven from the dead-letter queue, it must become the whole job, not attach to the first object and fail."""
    from assets_attach.runtime import get_runtime

    dropping.sim.add_object("5678", "HW-43")
    key = "attachments/inbox/redriven.pdf"
    dropping.put(key, b"%PDF-1.7 redriven", **{"assets-object-id": "1234,5678"})
    head = dropping.client("s3").head_object(Bucket=dropping.bucket, Key=key)
    job_id = s3_drop.Drop(dropping.bucket, key, None, None, head["ETag"].strip('"')).job_id
    get_runtime().jobs.record_failed_drop(job_id, dropping.bucket, key, "gave up after 5 attempts: S3 was down")

    worker.drain()  # the message, as if redriven from the dead-letter queue

    for object_id in ("1234", "5678"):
        assert [a.filename for a in dropping.sim.attachments(object_id)] == ["redriven.pdf"]
    job = job_of(dropping, api, key)
    assert job["status"] == "succeeded", job
    assert [(f["objectId"], f["status"]) for f in job["files"]] == [("1234", "attached"), ("5678", "attached")]
