"""A Jira Automation rule's view: POST the webhook, the job is queued, the worker attaches the file once.

Everything crosses real protocols: HTTP to the local API front (which invokes the webhook handler with
API Gateway proxy events), SQS, DynamoDB and S3 in moto, and the Atlassian simulator.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from assets_attach.core import retry_policy
from assets_attach.job_listing import INDEX_ITEM_PREFIX
from devstack.atlassian_sim import AtlassianSimulator, Fault
from devstack.lambda_local import LambdaContext, LocalWorker
from devstack.log_capture import CapturedLogs
from devstack.stack import LocalStack, child_env
from devstack.webhook_client import job_status, post


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Back-off waits of seconds, as in production, would only slow the suite; their sizes are unit-tested."""
    monkeypatch.setattr(retry_policy, "BACKOFF_BASE_SECONDS", 0.05)


def test_accepted_request_ends_as_exactly_one_attachment(
    stack: LocalStack, api: str, worker: LocalWorker, logs: CapturedLogs
) -> None:
    data = os.urandom(2 * 1024 * 1024)
    stack.put("attachments/in/Prüfbericht.pdf", data, "application/pdf")
    body = {
        "objectId": f"{stack.sim.workspace_id}:1234",
        "s3Uri": f"s3://{stack.bucket}/attachments/in/Prüfbericht.pdf",
        "filename": "Prüfbericht Q3.pdf",
        "comment": "from ITSM-17",
        "issueKey": "ITSM-17",
    }

    accepted = post(api, stack, body)

    assert accepted.status_code == 202, accepted.text
    reply = accepted.json()
    assert reply["status"] == "queued"
    assert reply["statusUrl"] == f"{api}/attachments/jobs/{reply['jobId']}"
    assert job_status(stack, reply["statusUrl"])["status"] == "queued"

    worker.drain()

    job = job_status(stack, reply["statusUrl"])
    assert job["status"] == "succeeded", job
    assert job["objectId"] == "1234" and job["attempts"] == 1 and job["issueKey"] == "ITSM-17"
    [attachment] = stack.sim.attachments("1234")
    assert job["files"] == [
        {
            "objectId": "1234",
            "bucket": stack.bucket,
            "key": "attachments/in/Prüfbericht.pdf",
            "filename": "Prüfbericht Q3.pdf",
            "size": len(data),
            "status": "attached",
            "attachmentId": str(attachment.id),
            "integrityCheck": "crc32",  # the full-object checksum boto3 stored with the object
        }
    ]
    assert attachment.filename == "Prüfbericht Q3.pdf"
    assert attachment.sha256 == hashlib.sha256(data).hexdigest()
    assert attachment.mime_type == "application/pdf"
    assert attachment.comment == "from ITSM-17"
    assert job["jobId"] in logs.text  # correlation key on the log lines


def test_the_same_request_again_returns_the_same_job_and_attaches_nothing_new(
    stack: LocalStack, api: str, worker: LocalWorker, logs: CapturedLogs
) -> None:
    stack.put("attachments/a.txt", b"hello")
    body = {"objectKey": "HW-42", "bucket": stack.bucket, "key": "attachments/a.txt"}

    first = post(api, stack, body).json()
    worker.drain()
    second = post(api, stack, body)

    assert second.status_code == 202
    assert second.json()["jobId"] == first["jobId"]
    assert stack.queue_depth(stack.queue_url) == 0
    worker.drain()
    assert len(stack.sim.attachments("1234")) == 1

    stack.put("attachments/a.txt", b"hello, changed")  # a new version is a new request
    third = post(api, stack, body).json()
    assert third["jobId"] != first["jobId"]


def test_several_files_in_one_job(stack: LocalStack, api: str, worker: LocalWorker) -> None:
    for name in ("one.csv", "two.png"):
        stack.put(f"attachments/{name}", name.encode())
    files = [
        {"s3Uri": f"s3://{stack.bucket}/attachments/one.csv"},
        {"bucket": stack.bucket, "key": "attachments/two.png", "filename": "Zwei.png"},
    ]
    reply = post(api, stack, {"objectId": 1234, "files": files}).json()
    worker.drain()
    job = job_status(stack, reply["statusUrl"])
    assert job["status"] == "succeeded"
    assert sorted(a.filename for a in stack.sim.attachments("1234")) == ["Zwei.png", "one.csv"]
    assert {a.mime_type for a in stack.sim.attachments("1234")} == {"text/csv", "image/png"}


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"s3Uri": "s3://BUCKET/attachments/a.txt"}, 400, "objectId"),
        ({"objectId": "1234"}, 400, "bucket"),
        ({"objectId": "1234", "bucket": "BUCKET"}, 400, "key"),
        ({"objectId": "abc", "s3Uri": "s3://BUCKET/attachments/a.txt"}, 400, "objectId"),
        ({"objectId": "1234", "s3Uri": "BUCKET/a.txt"}, 400, "s3Uri"),
        ({"objectId": "1234", "s3Uri": "s3://BUCKET/attachments/a.txt", "objectID": "1"}, 400, "objectID"),
        ({"objectId": "1234", "files": [{"s3Uri": "s3://BUCKET/attachments/a.txt"}, {"bucket": "BUCKET"}]}, 400,
         "files[1].key"),
        ({"objectId": "1234", "files": [{"s3Uri": "s3://BUCKET/x"}] * 21}, 400, "files"),
        ({"objectId": "1234", "s3Uri": "s3://not-allowed-bucket/a.txt"}, 403, "bucket"),
        ({"objectId": "1234", "s3Uri": "s3://BUCKET/attachments/missing.txt"}, 404, "key"),
        ({"objectId": "1234", "files": [{"s3Uri": "s3://BUCKET/attachments/a.txt"},
                                        {"s3Uri": "s3://BUCKET/attachments/big.bin"}]}, 413, "files[1].key"),
        ([1, 2], 400, "body"),
    ],
)  # fmt: skip
def test_bad_requests_get_their_status_and_name_the_field(
    stack: LocalStack, api: str, body: Any, status: int, field: str, logs: CapturedLogs, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack.put("attachments/a.txt", b"a")
    stack.put("attachments/big.bin", b"x" * 64)
    monkeypatch.setenv("MAX_FILE_SIZE_BYTES", "32")
    body = json.loads(json.dumps(body).replace("BUCKET", stack.bucket))

    reply = post(api, stack, body)

    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert error["field"] == field
    assert error["code"] and error["message"]
    assert error["message"].endswith("."), "a sentence a rule can print as it is"
    assert stack.queue_depth(stack.queue_url) == 0


def test_transport_errors(stack: LocalStack, api: str, logs: CapturedLogs) -> None:
    body = {"objectId": "1234", "s3Uri": f"s3://{stack.bucket}/attachments/a.txt"}
    not_json = post(api, stack, body, raw="objectId=1234")
    assert not_json.status_code == 400 and not_json.json()["error"]["field"] == "body"
    bad_json = post(api, stack, body, raw='{"objectId": ')
    assert bad_json.status_code == 400 and bad_json.json()["error"]["field"] == "body"
    form = post(api, stack, body, content_type="application/x-www-form-urlencoded")
    assert form.status_code == 415 and form.json()["error"]["code"] == "unsupported_media_type"
    wrong = post(api, stack, body, token="not-a-token")
    assert wrong.status_code == 401 and wrong.json()["error"]["field"] == "Authorization"
    anonymous = requests.post(f"{api}/attachments", json=body, timeout=30)
    assert anonymous.status_code == 401
    unknown = requests.get(f"{api}/attachments/jobs/nope", headers={"Authorization": f"Bearer {stack.webhook_token}"},
                           timeout=30)  # fmt: skip
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "job_not_found"
    peek = requests.get(f"{api}/attachments/jobs/nope", timeout=30)
    assert peek.status_code == 401


def test_several_webhook_tokens_are_valid_at_once(stack: LocalStack, api: str) -> None:
    stack.put("attachments/a.txt", b"a")
    stack.put_secret(webhookTokens=["new-token-0123456789", stack.webhook_token])
    body = {"objectId": "1234", "s3Uri": f"s3://{stack.bucket}/attachments/a.txt"}
    assert post(api, stack, body, token="new-token-0123456789").status_code == 202
    assert post(api, stack, body).status_code == 202


def test_worker_crash_after_the_link_leaves_one_attachment(
    stack: LocalStack, api: str, worker: LocalWorker, logs: CapturedLogs
) -> None:
    stack.put("attachments/a.txt", b"a")
    stack.sim.inject("link", Fault(after_success=True, drop_after_bytes=0))  # linked, then the reply is lost
    reply = post(api, stack, {"objectId": "1234", "s3Uri": f"s3://{stack.bucket}/attachments/a.txt"}).json()

    worker.drain()

    job = job_status(stack, reply["statusUrl"])
    assert job["status"] == "succeeded", job
    [attachment] = stack.sim.attachments("1234")
    assert job["files"][0]["attachmentId"] == str(attachment.id)
    assert "an interrupted link had attached this file" in logs.text


def test_without_the_attachment_list_a_link_still_works_but_a_lost_link_reply_is_never_guessed(
    stack: LocalStack, api: str, worker: LocalWorker, logs: CapturedLogs
) -> None:
    stack.put("attachments/a.txt", b"a")
    stack.put("attachments/b.txt", b"b")
    stack.sim.inject("list", Fault(status=404, times=10))
    plain = post(api, stack, {"objectId": "1234", "s3Uri": f"s3://{stack.bucket}/attachments/a.txt"}).json()
    worker.drain()
    assert job_status(stack, plain["statusUrl"])["status"] == "succeeded"

    stack.sim.inject("link", Fault(status=502, after_success=True))  # linked, but the answer says otherwise
    lost = post(api, stack, {"objectId": "1234", "s3Uri": f"s3://{stack.bucket}/attachments/b.txt"}).json()
    worker.drain()

    job = job_status(stack, lost["statusUrl"])
    assert job["status"] == "failed"
    assert job["files"][0]["errorCode"] == "link_outcome_unknown"
    assert "cannot be listed" in job["files"][0]["error"]
    assert [a.filename for a in stack.sim.attachments("1234")] == ["a.txt", "b.txt"]  # never a second b.txt


def test_a_retried_job_whose_link_outcome_was_unknown_adopts_the_copy_that_link_made(
    stack: LocalStack, api: str, worker: LocalWorker
) -> None:
    """The link was made but its reply lost, and the list was then unavailable: the pair failed with
    link_outcome_unknown. Retried once the list answers, the job finds the lost link's copy and adopts it; no
    second copy."""
    stack.put("attachments/b.txt", b"b")
    stack.sim.inject("link", Fault(drop_after_bytes=0, after_success=True))  # linked; the reply never comes
    stack.sim.inject("list", Fault(delay_seconds=0))  # the marker before the link is taken as usual
    stack.sim.inject("list", Fault(status=404, times=1000))  # then nobody can list the object to tell
    lost = post(api, stack, {"objectId": "1234", "s3Uri": f"s3://{stack.bucket}/attachments/b.txt"}).json()
    worker.drain()
    failed = job_status(stack, lost["statusUrl"])
    assert failed["status"] == "failed" and failed["files"][0]["errorCode"] == "link_outcome_unknown", failed
    [made] = stack.sim.attachments("1234")

    stack.sim.clear_faults()
    again = requests.post(
        f"{lost['statusUrl']}/retry", headers={"Authorization": f"Bearer {stack.webhook_token}"}, timeout=30
    )
    assert again.status_code == 202, again.text
    worker.drain()

    done = job_status(stack, lost["statusUrl"])
    assert done["status"] == "succeeded", done
    assert [a.id for a in stack.sim.attachments("1234")] == [made.id]  # the one copy, adopted
    assert done["files"][0]["attachmentId"] == str(made.id)


def test_an_older_attachment_with_the_same_name_is_not_taken_for_the_interrupted_one(
    stack: LocalStack, api: str, worker: LocalWorker
) -> None:
    body = {"objectId": "1234", "s3Uri": f"s3://{stack.bucket}/attachments/report.pdf"}
    stack.put("attachments/report.pdf", b"first report")
    post(api, stack, body)
    worker.drain()
    stack.put("attachments/report.pdf", b"second report, longer")
    stack.sim.inject("link", Fault(drop_after_bytes=0))  # the link is lost before it happened
    second = post(api, stack, body).json()

    worker.drain()

    assert job_status(stack, second["statusUrl"])["status"] == "succeeded"
    shas = sorted(a.sha256 for a in stack.sim.attachments("1234"))
    assert shas == sorted(hashlib.sha256(d).hexdigest() for d in (b"first report", b"second report, longer"))


def test_429_with_retry_after_and_5xx_bursts_end_in_success(
    stack: LocalStack, api: str, worker: LocalWorker, logs: CapturedLogs
) -> None:
    stack.put("attachments/a.txt", b"a")
    stack.sim.inject("upload", Fault(status=429, retry_after=1))
    stack.sim.inject("link", Fault(status=503, times=2))
    reply = post(api, stack, {"objectId": "1234", "s3Uri": f"s3://{stack.bucket}/attachments/a.txt"}).json()

    worker.drain()

    job = job_status(stack, reply["statusUrl"])
    assert job["status"] == "succeeded", job
    assert len(stack.sim.attachments("1234")) == 1
    assert job["attempts"] >= 3  # the first try, the 429, and the 503s
    assert "retryable failure" in logs.text


def test_a_long_retry_after_hands_the_message_back_with_that_delay(
    stack: LocalStack, api: str, worker: LocalWorker, logs: CapturedLogs
) -> None:
    stack.put("attachments/a.txt", b"a")
    stack.sim.inject("credentials", Fault(status=429, retry_after=120))
    reply = post(api, stack, {"objectId": "1234", "s3Uri": f"s3://{stack.bucket}/attachments/a.txt"}).json()

    assert worker.poll_once() == 1
    time.sleep(stack.visibility_timeout + 1)
    assert worker.poll_once() == 0  # invisible for the 120 s Atlassian asked for, not the queue's 2 s
    job = job_status(stack, reply["statusUrl"])
    assert job["status"] == "running"
    assert stack.queue_depth(stack.queue_url) == 1


def test_a_permanent_failure_fails_the_job_at_once_with_its_reason(
    stack: LocalStack, api: str, worker: LocalWorker, logs: CapturedLogs
) -> None:
    stack.put("attachments/a.txt", b"a")
    stack.sim.inject("credentials", Fault(status=403))
    reply = post(api, stack, {"objectId": "1234", "s3Uri": f"s3://{stack.bucket}/attachments/a.txt"}).json()

    worker.drain()

    job = job_status(stack, reply["statusUrl"])
    assert job["status"] == "failed"
    assert "403" in job["files"][0]["error"] and job["files"][0]["status"] == "failed"
    assert job["attempts"] == 1
    assert worker.invocations == 1
    assert stack.queue_depth(stack.queue_url) == 0 and stack.queue_depth(stack.dlq_url) == 0


def test_an_unknown_object_key_is_refused_at_acceptance_and_nothing_is_queued(stack: LocalStack, api: str) -> None:
    """Keys are resolved when the request is accepted (issue 18 §4), so the rule hears of a wrong key at once."""
    stack.put("attachments/a.txt", b"a")
    reply = post(api, stack, {"objectKey": "HW-404", "s3Uri": f"s3://{stack.bucket}/attachments/a.txt"})
    assert reply.status_code == 404, reply.text
    error = reply.json()["error"]
    assert (error["code"], error["field"]) == ("object_not_found", "objectKey") and "HW-404" in error["message"]
    assert stack.queue_depth(stack.queue_url) == 0


def test_an_unknown_object_id_fails_with_a_reason_a_rule_can_print(
    stack: LocalStack, api: str, worker: LocalWorker
) -> None:
    stack.put("attachments/a.txt", b"a")
    reply = post(api, stack, {"objectId": "9999", "s3Uri": f"s3://{stack.bucket}/attachments/a.txt"}).json()
    worker.drain()
    job = job_status(stack, reply["statusUrl"])
    [file] = job["files"]
    assert (job["status"], file["errorCode"]) == ("failed", "object_not_found")
    assert file["error"].startswith("Assets object 9999 not found")  # not "credentials: Assets object …"
    assert job["summary"].startswith("0 of 1 attached; a.txt: Assets object 9999 not found")


def test_a_message_that_keeps_failing_lands_in_the_dlq_with_its_job_failed(
    stack: LocalStack, api: str, worker: LocalWorker, logs: CapturedLogs
) -> None:
    stack.put("attachments/a.txt", b"a")
    stack.sim.inject("credentials", Fault(status=503, retry_after=0, times=1000))
    reply = post(api, stack, {"objectId": "1234", "s3Uri": f"s3://{stack.bucket}/attachments/a.txt"}).json()

    worker.drain(rounds=stack.max_receive_count + 2)

    job = job_status(stack, reply["statusUrl"])
    assert job["status"] == "failed"
    assert f"gave up after {stack.max_receive_count} attempts" in job["error"]
    assert stack.queue_depth(stack.queue_url) == 0
    assert stack.queue_depth(stack.dlq_url) == 1
    assert stack.sim.attachments("1234") == []

    # The outage is over: an operator moves the message back from the DLQ and the job runs again.
    stack.sim.clear_faults()
    sqs = stack.client("sqs")
    [message] = sqs.receive_message(QueueUrl=stack.dlq_url).get("Messages", [])
    sqs.send_message(QueueUrl=stack.queue_url, MessageBody=message["Body"])
    sqs.delete_message(QueueUrl=stack.dlq_url, ReceiptHandle=message["ReceiptHandle"])
    worker.drain()
    job = job_status(stack, reply["statusUrl"])
    assert job["status"] == "succeeded" and "error" not in job
    assert len(stack.sim.attachments("1234")) == 1


def test_a_duplicate_delivered_while_the_job_runs_waits_it_out_instead_of_spending_its_receives(
    stack: LocalStack, api: str, logs: CapturedLogs
) -> None:
    """SQS delivers at least once: a second copy of a job's message reaches another environment while the first
    still runs the job. It must come back once that run is over, not burn its receives into the DLQ meanwhile."""
    stack.put("attachments/a.txt", b"a")
    stack.sim.inject("upload", Fault(delay_seconds=6))  # a long upload
    reply = post(api, stack, {"objectId": "1234", "s3Uri": f"s3://{stack.bucket}/attachments/a.txt"}).json()
    sqs = stack.client("sqs")
    [message] = sqs.receive_message(QueueUrl=stack.queue_url, VisibilityTimeout=0)["Messages"]
    first = subprocess.Popen(
        [sys.executable, "-m", "reliability.worker_process"],
        env=child_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while job_status(stack, reply["statusUrl"])["status"] == "queued" and time.monotonic() < deadline:
            time.sleep(0.1)
        sqs.send_message(QueueUrl=stack.queue_url, MessageBody=message["Body"])  # the copy
        other = stack.worker(timeout_seconds=15)  # another environment
        while other.poll_once(wait_seconds=1) == 0 and time.monotonic() < deadline:
            pass
        handed_back = [json.loads(line) for line in logs.lines if "another invocation is running" in line]
        # Back after about this environment's own timeout (15 s): its time left, which a loaded machine shaves.
        [wait] = [line["waitSeconds"] for line in handed_back]
        assert 10 <= wait <= 15
        deadline = time.monotonic() + 60
        while job_status(stack, reply["statusUrl"])["status"] != "succeeded" and time.monotonic() < deadline:
            time.sleep(0.2)
        while stack.queue_depth(stack.queue_url) and time.monotonic() < deadline:
            other.poll_once(wait_seconds=1)  # the copy returns, finds the job done, and is deleted
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=30)

    assert job_status(stack, reply["statusUrl"])["status"] == "succeeded"
    assert len(stack.sim.attachments("1234")) == 1
    assert (stack.queue_depth(stack.queue_url), stack.queue_depth(stack.dlq_url)) == (0, 0)


@dataclass
class ShortInvocation(LambdaContext):
    """An invocation with time for one file: plenty until a file lands on the object, then almost none."""

    sim: AtlassianSimulator | None = None
    landed_before: int = -1

    def get_remaining_time_in_millis(self) -> int:
        assert self.sim is not None
        landed = len(self.sim.attachments("1234"))
        if self.landed_before < 0:
            self.landed_before = landed
        return 600_000 if landed == self.landed_before else 1_000


def test_a_job_that_runs_out_of_time_continues_in_a_new_message(
    stack: LocalStack, api: str, logs: CapturedLogs
) -> None:
    worker = LocalWorker(stack.client("sqs"), stack.queue_url, context_factory=lambda: ShortInvocation(sim=stack.sim))
    files = [{"s3Uri": f"s3://{stack.bucket}/attachments/{n}.txt"} for n in range(3)]
    for n in range(3):
        stack.put(f"attachments/{n}.txt", str(n).encode())
    reply = post(api, stack, {"objectId": "1234", "files": files}).json()

    worker.drain()

    job = job_status(stack, reply["statusUrl"])
    assert job["status"] == "succeeded", job
    assert sorted(a.filename for a in stack.sim.attachments("1234")) == ["0.txt", "1.txt", "2.txt"]
    assert worker.invocations == 3  # one file per invocation, each continuing in a fresh message
    assert stack.queue_depth(stack.dlq_url) == 0
    assert "continues in a new message" in logs.text


def test_content_that_vanished_after_acceptance_fails_the_job_without_retry(
    stack: LocalStack, api: str, worker: LocalWorker
) -> None:
    version = stack.put("attachments/a.txt", b"accepted bytes")["VersionId"]
    reply = post(api, stack, {"objectId": "1234", "s3Uri": f"s3://{stack.bucket}/attachments/a.txt"}).json()
    stack.put("attachments/a.txt", b"newer bytes")  # a newer version does not matter: the accepted one is pinned
    stack.client("s3").delete_object(Bucket=stack.bucket, Key="attachments/a.txt", VersionId=version)

    worker.drain()

    job = job_status(stack, reply["statusUrl"])
    assert job["status"] == "failed"
    assert job["files"][0]["errorCode"] == "source_deleted"
    assert "was deleted after the request was accepted" in job["files"][0]["error"]
    assert worker.invocations == 1 and stack.queue_depth(stack.dlq_url) == 0
    assert stack.sim.attachments("1234") == []


def test_a_source_deleted_after_acceptance_is_not_attached_but_a_superseded_one_is(
    stack: LocalStack, api: str, worker: LocalWorker
) -> None:
    stack.put("attachments/gone.txt", b"deleted after the 202")
    stack.put("attachments/kept.txt", b"accepted version")
    gone = post(api, stack, {"objectId": "1234", "s3Uri": f"s3://{stack.bucket}/attachments/gone.txt"}).json()
    kept = post(api, stack, {"objectId": "1234", "s3Uri": f"s3://{stack.bucket}/attachments/kept.txt"}).json()
    stack.client("s3").delete_object(Bucket=stack.bucket, Key="attachments/gone.txt")  # a delete marker
    stack.put("attachments/kept.txt", b"a newer version, uploaded after the 202")

    worker.drain()

    deleted = job_status(stack, gone["statusUrl"])
    assert deleted["status"] == "failed" and deleted["files"][0]["errorCode"] == "source_deleted"
    assert job_status(stack, kept["statusUrl"])["status"] == "succeeded"
    [attachment] = stack.sim.attachments("1234")
    assert attachment.filename == "kept.txt"
    assert attachment.sha256 == hashlib.sha256(b"accepted version").hexdigest()
    assert stack.queue_depth(stack.dlq_url) == 0


def test_when_the_queue_or_the_stores_fail_the_webhook_says_so_and_nothing_is_accepted(
    stack: LocalStack, api: str, logs: CapturedLogs
) -> None:
    stack.put("attachments/a.txt", b"a")
    body = {"objectId": "1234", "s3Uri": f"s3://{stack.bucket}/attachments/a.txt"}
    stack.client("sqs").delete_queue(QueueUrl=stack.queue_url)

    no_queue = post(api, stack, body)

    assert no_queue.status_code == 503, no_queue.text
    assert no_queue.json()["error"]["code"] == "unavailable" and "queued" in no_queue.json()["error"]["message"]
    items = stack.client("dynamodb").scan(TableName=stack.jobs_table)["Items"]
    jobs = [j for j in items if not j["jobId"]["S"].startswith(INDEX_ITEM_PREFIX)]  # not the job's index items
    assert [j["status"]["S"] for j in jobs] == ["failed"]  # recorded as never queued, for the operator

    stack.client("dynamodb").delete_table(TableName=stack.idempotency_table)
    no_store = post(api, stack, body)
    assert no_store.status_code == 503 and no_store.json()["error"]["code"] == "unavailable"


def test_a_job_failed_for_a_fixable_reason_can_be_run_again_on_purpose(
    stack: LocalStack, api: str, worker: LocalWorker
) -> None:
    """Issue 18 §11: the token was revoked (every pair fails for good); once the secret holds a working token,
    POST /attachments/jobs/{jobId}/retry runs the failed pairs again, keeping what was attached."""
    stack.sim.add_object("5678", "HW-43")
    stack.put("attachments/a.txt", b"a")
    reply = post(api, stack, {"objectId": "1234", "s3Uri": f"s3://{stack.bucket}/attachments/a.txt"}).json()
    worker.drain()
    stack.sim.set_api_token("rotated-by-the-admin")  # the old one is revoked
    second = post(api, stack, {"objectId": "1234, 5678", "s3Uri": f"s3://{stack.bucket}/attachments/a.txt"}).json()
    worker.drain()
    failed = job_status(stack, second["statusUrl"])
    assert failed["status"] == "failed", failed
    headers = {"Authorization": f"Bearer {stack.webhook_token}"}

    early = requests.post(f"{reply['statusUrl']}/retry", headers=headers, timeout=30)  # that one succeeded
    assert early.status_code == 409 and early.json()["error"]["code"] == "not_retryable"
    stack.put_secret(apiToken="rotated-by-the-admin")
    again = requests.post(f"{second['statusUrl']}/retry", headers=headers, timeout=30)
    assert again.status_code == 202, again.text
    assert job_status(stack, second["statusUrl"])["status"] == "queued"
    worker.drain()

    done = job_status(stack, second["statusUrl"])
    assert done["status"] == "succeeded", done
    assert [(f["objectId"], f["status"]) for f in done["files"]] == [("1234", "attached"), ("5678", "attached")]
    assert len(stack.sim.attachments("1234")) == 2 and len(stack.sim.attachments("5678")) == 1
    assert requests.post(f"{api}/attachments/jobs/nope/retry", headers=headers, timeout=30).status_code == 404
