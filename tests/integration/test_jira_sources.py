"""Webhook API v2 as a Jira rule uses it: Jira issue attachments as sources, several objects per request, and
an answer the rule can wait for. Over real protocols: the local API front, SQS/DynamoDB/S3 in moto, and the
Atlassian simulator serving both the Assets API and the Jira site (its media download host on another
address)."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from assets_attach.aws.job_store import JobStore
from assets_attach.core import retry_policy
from assets_attach.errors import AttachError
from assets_attach.runtime import get_runtime
from devstack.atlassian_sim import Fault, SimRequest
from devstack.lambda_local import LocalWorker
from devstack.log_capture import CapturedLogs
from devstack.stack import LocalStack, patched_environ
from devstack.webhook_client import job_status, post


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retry_policy, "BACKOFF_BASE_SECONDS", 0.05)


@pytest.fixture
def objects(stack: LocalStack) -> tuple[str, str]:
    """Two Assets objects: 1234 (HW-42) and 5678 (HW-43)."""
    stack.sim.add_object("5678", "HW-43")
    return "1234", "5678"


@pytest.fixture
def running_worker(worker: LocalWorker) -> Iterator[LocalWorker]:
    """The worker polling in the background, as Lambda's poller does, so that a waiting webhook sees the job end."""
    worker.start()
    yield worker
    worker.stop()


def jira_file(
    stack: LocalStack, issue: str, name: str, size: int = 300_000, mime: str = "application/pdf"
) -> tuple[str, bytes]:
    data = os.urandom(size)
    return stack.sim.add_jira_attachment(issue, name, data, mime), data


def landed(stack: LocalStack, object_id: str) -> dict[str, tuple[str, int, str]]:
    """What the object holds: filename → (sha256, size, MIME type)."""
    return {a.filename: (a.sha256, a.size, a.mime_type) for a in stack.sim.attachments(object_id)}


def downloads(stack: LocalStack) -> list[SimRequest]:
    """Requests to the media download host (the media upload is a POST on the API's host)."""
    return [r for r in stack.sim.requests if r.method == "GET" and r.path.endswith("/binary")]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_jira_attachment_lands_on_two_objects_and_the_rule_gets_the_outcome(
    stack: LocalStack, api: str, running_worker: LocalWorker, objects: tuple[str, str], logs: CapturedLogs
) -> None:
    attachment_id, data = jira_file(stack, "SUP-12", "Übergabeprotokoll.pdf")
    ws = stack.sim.workspace_id
    body = {"objectId": f"{ws}:1234, {ws}:5678", "jiraAttachments": [attachment_id], "issueKey": "SUP-12", "wait": True}

    reply = post(api, stack, body)

    assert reply.status_code == 200, reply.text
    job = reply.json()
    assert job["status"] == "succeeded" and job["issueKey"] == "SUP-12" and job["objectId"] == "1234"
    assert job["summary"] == "2 of 2 attached."
    assert [(f["objectId"], f["jiraAttachmentId"], f["status"], f["size"]) for f in job["files"]] == [
        ("1234", attachment_id, "attached", len(data)),
        ("5678", attachment_id, "attached", len(data)),
    ]
    for object_id in objects:
        assert landed(stack, object_id) == {"Übergabeprotokoll.pdf": (sha(data), len(data), "application/pdf")}
    assert job_status(stack, job["statusUrl"])["files"] == job["files"]
    # The bytes came from the site with redirect=false: the media download host saw nothing.
    assert not downloads(stack)


@pytest.mark.parametrize(
    "targets",
    [
        {"objectId": ["1234", 5678]},
        {"objectId": "1234 5678"},
        {"objectId": "sim-workspace:1234,sim-workspace:5678"},
        {"objectKey": ["HW-42", "HW-43"]},
        {"objectKey": "HW-42, HW-43"},
    ],
    ids=["id-list", "id-string", "prefixed-ids", "key-list", "key-string"],
)
def test_every_accepted_form_of_several_objects_attaches_each_file_to_each(
    stack: LocalStack, api: str, worker: LocalWorker, objects: tuple[str, str], targets: dict[str, Any]
) -> None:
    stack.put("attachments/report.csv", b"a;b\n1;2\n", "text/csv")
    body = {**targets, "s3Uri": f"s3://{stack.bucket}/attachments/report.csv"}

    reply = post(api, stack, body)
    assert reply.status_code == 202, reply.text
    worker.drain()

    job = job_status(stack, reply.json()["statusUrl"])
    assert job["status"] == "succeeded", job
    assert [(f["objectId"], f["status"]) for f in job["files"]] == [("1234", "attached"), ("5678", "attached")]
    for object_id in objects:
        assert list(landed(stack, object_id)) == ["report.csv"]


def test_all_of_an_issues_attachments_and_an_s3_file_in_one_request(
    stack: LocalStack, api: str, worker: LocalWorker
) -> None:
    first, first_data = jira_file(stack, "SUP-7", "photo.jpg", mime="image/jpeg")
    second, second_data = jira_file(stack, "SUP-7", "notes.txt", size=1000, mime="text/plain")
    jira_file(stack, "SUP-8", "someone else's.pdf")
    stack.put("attachments/contract.pdf", b"%PDF-1.7 contract", "application/pdf")
    body = {
        "objectKey": "HW-42",
        "s3Uri": f"s3://{stack.bucket}/attachments/contract.pdf",
        "jiraAttachments": "all",
        "issueKey": "SUP-7",
        "comment": "from SUP-7",
    }

    reply = post(api, stack, body)
    assert reply.status_code == 202, reply.text
    worker.drain()

    job = job_status(stack, reply.json()["statusUrl"])
    assert job["status"] == "succeeded", job
    assert [(f.get("key"), f.get("jiraAttachmentId"), f["filename"]) for f in job["files"]] == [
        ("attachments/contract.pdf", None, "contract.pdf"),
        (None, first, "photo.jpg"),
        (None, second, "notes.txt"),
    ]
    assert landed(stack, "1234") == {
        "contract.pdf": (sha(b"%PDF-1.7 contract"), 17, "application/pdf"),
        "photo.jpg": (sha(first_data), len(first_data), "image/jpeg"),
        "notes.txt": (sha(second_data), len(second_data), "text/plain"),
    }
    assert {a.comment for a in stack.sim.attachments("1234")} == {"from SUP-7"}


def test_ids_as_numbers_and_strings_and_a_filename_for_the_only_one(
    stack: LocalStack, api: str, worker: LocalWorker
) -> None:
    attachment_id, data = jira_file(stack, "SUP-9", "scan0001.pdf")
    body = {"objectId": 1234, "jiraAttachments": [int(attachment_id)], "filename": "Lieferschein.pdf"}

    reply = post(api, stack, body)
    assert reply.status_code == 202, reply.text
    worker.drain()

    assert landed(stack, "1234") == {"Lieferschein.pdf": (sha(data), len(data), "application/pdf")}


def test_ids_as_one_string_as_issue_attachment_id_renders_them(
    stack: LocalStack, api: str, worker: LocalWorker, objects: tuple[str, str]
) -> None:
    """A rule's body as Jira renders it: {{issue.attachment.id}} and a multi-object field joined with ", "."""
    first, one = jira_file(stack, "SUP-10", "one.pdf")
    second, two = jira_file(stack, "SUP-10", "two.pdf")
    body = {"objectId": "1234, 5678", "jiraAttachments": f"{first}, {second}", "issueKey": "SUP-10"}

    reply = post(api, stack, body)
    assert reply.status_code == 202, reply.text
    worker.drain()

    for object_id in objects:
        assert {name: digest for name, (digest, _, _) in landed(stack, object_id).items()} == {
            "one.pdf": sha(one),
            "two.pdf": sha(two),
        }


def test_each_jira_attachment_object_pair_is_attached_once_across_requests(
    stack: LocalStack, api: str, worker: LocalWorker, objects: tuple[str, str]
) -> None:
    first, _ = jira_file(stack, "SUP-3", "first.pdf")
    body = {"objectId": "1234", "jiraAttachments": "all", "issueKey": "SUP-3"}
    earlier = post(api, stack, body).json()
    assert post(api, stack, body).json()["jobId"] == earlier["jobId"]  # the same request: the same job
    worker.drain()

    # One more attachment on the issue and one more object: a different request, the same pair (first, 1234).
    jira_file(stack, "SUP-3", "second.pdf")
    later = post(api, stack, {**body, "objectId": "1234,5678"}).json()
    assert later["jobId"] != earlier["jobId"]
    worker.drain()

    job = job_status(stack, later["statusUrl"])
    assert job["status"] == "succeeded", job
    by_pair = {(f["jiraAttachmentId"], f["objectId"]): f for f in job["files"]}
    assert by_pair[(first, "1234")]["attachedBy"] == earlier["jobId"]
    assert sorted(a.filename for a in stack.sim.attachments("1234")) == ["first.pdf", "second.pdf"]
    assert sorted(a.filename for a in stack.sim.attachments("5678")) == ["first.pdf", "second.pdf"]
    assert by_pair[(first, "1234")]["attachmentId"] == str(stack.sim.attachments("1234")[0].id)


def test_a_lost_link_reply_for_a_jira_pair_still_ends_as_one_attachment(
    stack: LocalStack, api: str, worker: LocalWorker, objects: tuple[str, str]
) -> None:
    attachment_id, data = jira_file(stack, "SUP-4", "once.pdf")
    stack.sim.inject("link", Fault(drop_after_bytes=0, after_success=True))  # made, but the reply is lost

    reply = post(api, stack, {"objectId": ["1234", "5678"], "jiraAttachments": [attachment_id]})
    assert reply.status_code == 202, reply.text
    worker.drain()

    job = job_status(stack, reply.json()["statusUrl"])
    assert job["status"] == "succeeded", job
    for object_id in objects:
        assert landed(stack, object_id) == {"once.pdf": (sha(data), len(data), "application/pdf")}


def test_a_redirect_to_the_media_host_is_followed_without_the_sites_credentials(
    stack: LocalStack, api: str, worker: LocalWorker
) -> None:
    attachment_id, data = jira_file(stack, "SUP-5", "redirected.bin", mime="application/octet-stream")
    stack.sim.always_redirect_content = True
    hosts = f"127.0.0.1,{stack.sim.media_download_host}"
    with patched_environ({"MEDIA_ALLOWED_HOSTS": hosts}):
        get_runtime.cache_clear()
        reply = post(api, stack, {"objectId": "1234", "jiraAttachments": [attachment_id]})
        assert reply.status_code == 202, reply.text
        worker.drain()
    get_runtime.cache_clear()

    job = job_status(stack, reply.json()["statusUrl"])
    assert job["status"] == "succeeded", job
    assert landed(stack, "1234") == {"redirected.bin": (sha(data), len(data), "application/octet-stream")}
    seen = downloads(stack)
    assert seen and all("Authorization" not in r.headers for r in seen)


def test_a_redirect_to_a_host_not_allowed_is_not_followed(stack: LocalStack, api: str, worker: LocalWorker) -> None:
    attachment_id, _ = jira_file(stack, "SUP-6", "elsewhere.pdf")
    stack.sim.always_redirect_content = True

    reply = post(api, stack, {"objectId": "1234", "jiraAttachments": [attachment_id]})
    assert reply.status_code == 202, reply.text
    worker.drain()

    job = job_status(stack, reply.json()["statusUrl"])
    [file] = job["files"]
    assert (job["status"], file["status"], file["errorCode"]) == ("failed", "failed", "media_host_not_allowed")
    assert not downloads(stack)
    assert stack.sim.attachments("1234") == []


def test_a_failed_job_answers_422_with_the_reason(stack: LocalStack, api: str, running_worker: LocalWorker) -> None:
    attachment_id, _ = jira_file(stack, "SUP-10", "gone.pdf")
    stack.sim.inject("jira-content", Fault(status=404))  # deleted after the request was accepted

    reply = post(api, stack, {"objectId": "1234", "jiraAttachments": [attachment_id], "wait": 20})

    assert reply.status_code == 422, reply.text
    job = reply.json()
    [file] = job["files"]
    assert (job["status"], file["status"], file["errorCode"]) == ("failed", "failed", "source_deleted")
    assert job["summary"] == (  # what a rule prints as it is
        f"0 of 1 attached; gone.pdf: Jira attachment {attachment_id} was deleted after the request was accepted."
    )
    assert stack.sim.attachments("1234") == []


def test_a_wait_that_runs_out_answers_202_and_the_job_goes_on(stack: LocalStack, api: str, worker: LocalWorker) -> None:
    attachment_id, _ = jira_file(stack, "SUP-11", "later.pdf")

    reply = post(api, stack, {"objectId": "1234", "jiraAttachments": [attachment_id], "wait": 1})

    assert reply.status_code == 202, reply.text
    assert reply.json()["status"] == "queued"
    worker.drain()
    assert job_status(stack, reply.json()["statusUrl"])["status"] == "succeeded"


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"objectId": "1234", "jiraAttachments": ["99999"]}, 404, "jiraAttachments[0]"),
        ({"objectId": "1234", "jiraAttachments": "all", "issueKey": "NOPE-1"}, 404, "issueKey"),
        ({"objectId": "1234", "jiraAttachments": "all", "issueKey": "EMPTY-1"}, 404, "jiraAttachments"),
        ({"objectId": "1234", "jiraAttachments": "all"}, 400, "issueKey"),
        ({"objectId": "1234", "jiraAttachments": ["12ab"]}, 400, "jiraAttachments[0]"),
        ({"objectId": "1234", "jiraAttachments": []}, 400, "jiraAttachments"),
        ({"objectId": "1234", "jiraAttachments": [str(n) for n in range(10001, 10022)]}, 400, "jiraAttachments"),
        ({"objectId": ",".join(str(n) for n in range(1, 22)), "jiraAttachments": ["1"]}, 400, "objectId"),
        ({"objectId": ["1234", "x"], "jiraAttachments": ["1"]}, 400, "objectId[1]"),
        ({"objectId": "1234", "jiraAttachments": ["1"], "wait": 30}, 400, "wait"),
        ({"objectId": "1234", "jiraAttachments": ["1"], "wait": "yes"}, 400, "wait"),
    ],
    ids=[
        "unknown-id",
        "unknown-issue",
        "issue-without-attachments",
        "all-without-issue",
        "not-an-id",
        "empty-list",
        "21-files",
        "21-objects",
        "bad-object-in-list",
        "wait-too-long",
        "wait-not-a-number",
    ],
)
def test_bad_jira_requests_name_the_field(
    stack: LocalStack, api: str, body: dict[str, Any], status: int, field: str
) -> None:
    stack.sim.add_issue("EMPTY-1")
    stack.sim.add_jira_attachment("SUP-1", "a.pdf", b"a")  # id 10000

    reply = post(api, stack, body)

    assert reply.status_code == status, reply.text
    assert reply.json()["error"]["field"] == field, reply.text


def test_more_than_50_pairs_and_a_filename_for_several_files_are_refused(stack: LocalStack, api: str) -> None:
    ids = [stack.sim.add_jira_attachment("SUP-2", f"f{n}.pdf", b"x") for n in range(3)]
    objects = [str(n) for n in range(1, 18)]  # 3 files x 17 objects = 51 pairs

    too_many = post(api, stack, {"objectId": objects, "jiraAttachments": ids})
    one_name = post(
        api, stack, {"objectId": "1234", "jiraAttachments": "all", "issueKey": "SUP-2", "filename": "x.pdf"}
    )

    assert (too_many.status_code, too_many.json()["error"]["field"]) == (400, "objectId")
    assert "51" in too_many.json()["error"]["message"]
    assert (one_name.status_code, one_name.json()["error"]["field"]) == (400, "filename")


def test_an_attachment_over_the_size_limit_is_refused_with_413(stack: LocalStack, api: str) -> None:
    attachment_id, _ = jira_file(stack, "SUP-13", "huge.iso", size=2048)
    with patched_environ({"MAX_FILE_SIZE_BYTES": "1024"}):
        get_runtime.cache_clear()
        reply = post(api, stack, {"objectId": "1234", "jiraAttachments": [attachment_id]})
    get_runtime.cache_clear()

    assert reply.status_code == 413, reply.text
    assert reply.json()["error"]["field"] == "jiraAttachments[0]"


def test_a_secret_without_site_url_says_what_to_add(stack: LocalStack, api: str) -> None:
    attachment_id, _ = jira_file(stack, "SUP-14", "a.pdf")
    stack.put_secret(siteUrl=None)
    get_runtime.cache_clear()

    reply = post(api, stack, {"objectId": "1234", "jiraAttachments": [attachment_id]})

    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["field"] == "jiraAttachments" and '"siteUrl"' in error["message"]


def test_concurrent_waiting_requests_each_get_their_own_job(
    stack: LocalStack, api: str, running_worker: LocalWorker
) -> None:
    """The local API runs one request at a time per environment, as Lambda does: a waiting request holds it."""
    ids = [jira_file(stack, "SUP-15", f"part{n}.pdf", size=1000)[0] for n in range(2)]
    replies: dict[str, Any] = {}

    def send(attachment_id: str) -> None:
        replies[attachment_id] = post(api, stack, {"objectId": "1234", "jiraAttachments": [attachment_id], "wait": 20})

    threads = [threading.Thread(target=send, args=(i,)) for i in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert {r.status_code for r in replies.values()} == {200}
    assert {i: r.json()["files"][0]["jiraAttachmentId"] for i, r in replies.items()} == {i: i for i in ids}


def test_a_parked_holder_does_not_starve_the_next_all_run(stack: LocalStack, api: str, worker: LocalWorker) -> None:
    """Issue 18 §1: job A holds (X, object) and is parked on a 429 with Retry-After; job B, the next "all" run,
    attaches the new attachment Y at once, waits for X in time (its pair says which job it waits for), and adopts
    A's copy when A is done. Each attachment lands once."""
    x, x_data = jira_file(stack, "SUP-30", "first.pdf")
    body = {"objectId": "1234", "jiraAttachments": "all", "issueKey": "SUP-30"}
    job_a = post(api, stack, body).json()
    stack.sim.inject("jira-content", Fault(status=429, retry_after=12))  # A is parked, holding X's claim
    worker.poll_once()
    y, y_data = jira_file(stack, "SUP-30", "second.pdf")
    job_b = post(api, stack, body).json()
    worker.poll_once()

    waiting = job_status(stack, job_b["statusUrl"])
    by_id = {f["jiraAttachmentId"]: f for f in waiting["files"]}
    assert (by_id[x]["status"], by_id[x].get("waitingFor")) == ("pending", job_a["jobId"])
    assert by_id[y]["status"] == "attached"  # not starved behind X

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not all(
        job_status(stack, job["statusUrl"])["status"] == "succeeded" for job in (job_a, job_b)
    ):
        worker.poll_once(wait_seconds=1)

    done = {f["jiraAttachmentId"]: f for f in job_status(stack, job_b["statusUrl"])["files"]}
    assert (done[x]["status"], done[x]["attachedBy"], done[x].get("waitingFor")) == ("attached", job_a["jobId"], None)
    assert landed(stack, "1234") == {
        "first.pdf": (sha(x_data), len(x_data), "application/pdf"),
        "second.pdf": (sha(y_data), len(y_data), "application/pdf"),
    }
    assert len(stack.sim.attachments("1234")) == 2


def test_a_wait_whose_record_cannot_be_read_answers_202_not_503(
    stack: LocalStack, api: str, worker: LocalWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 18 §7: the job is queued; only watching it failed. "Nothing was accepted" would be untrue."""
    attachment_id, _ = jira_file(stack, "SUP-13", "queued.pdf")

    def unreadable(self: JobStore, job_id: str, seconds: float) -> None:
        raise AttachError("cannot read the job (ProvisionedThroughputExceededException)", step="jobs", retryable=True)

    monkeypatch.setattr(JobStore, "wait_until_done", unreadable)

    reply = post(api, stack, {"objectId": "1234", "jiraAttachments": [attachment_id], "wait": True})

    assert reply.status_code == 202, reply.text
    worker.drain()
    assert job_status(stack, reply.json()["statusUrl"])["status"] == "succeeded"


def test_all_applies_the_limits_to_the_attachments_not_yet_attached(
    stack: LocalStack, api: str, worker: LocalWorker
) -> None:
    """Issue 18 §9: recipe 1 ("all" on every new attachment) must keep working past the 20th attachment."""
    for n in range(20):
        jira_file(stack, "SUP-40", f"page-{n:02}.pdf", size=2_000)
    body = {"objectId": "1234", "jiraAttachments": "all", "issueKey": "SUP-40"}
    assert post(api, stack, body).status_code == 202
    worker.drain()
    newest, _ = jira_file(stack, "SUP-40", "page-20.pdf", size=2_000)

    reply = post(api, stack, body)

    assert reply.status_code == 202, reply.text
    worker.drain()
    job = job_status(stack, reply.json()["statusUrl"])
    assert [(f["jiraAttachmentId"], f["status"]) for f in job["files"]] == [(newest, "attached")]
    names = [a.filename for a in stack.sim.attachments("1234")]
    assert sorted(names) == [f"page-{n:02}.pdf" for n in range(21)]  # each once


def test_one_object_named_twice_is_one_object(stack: LocalStack, api: str, worker: LocalWorker) -> None:
    """Issue 18 §4: AQL ignores case, so HW-42 and hw-42 are one object; and an id and its key are one request."""
    stack.put("attachments/once.txt", b"once")
    by_keys = post(api, stack, {"objectKey": "HW-42, hw-42", "s3Uri": f"s3://{stack.bucket}/attachments/once.txt"})
    by_id = post(api, stack, {"objectId": "1234", "s3Uri": f"s3://{stack.bucket}/attachments/once.txt"})

    assert by_keys.status_code == by_id.status_code == 202, by_keys.text
    assert by_keys.json()["jobId"] == by_id.json()["jobId"]  # the same request: one job
    worker.drain()
    job = job_status(stack, by_keys.json()["statusUrl"])
    assert [(f["objectId"], f["status"]) for f in job["files"]] == [("1234", "attached")]
    assert [a.filename for a in stack.sim.attachments("1234")] == ["once.txt"]


def test_an_object_key_that_does_not_exist_is_a_404_naming_the_field(stack: LocalStack, api: str) -> None:
    stack.put("attachments/x.txt", b"x")
    reply = post(api, stack, {"objectKey": "HW-404", "s3Uri": f"s3://{stack.bucket}/attachments/x.txt"})
    assert reply.status_code == 404, reply.text
    assert reply.json()["error"]["field"] == "objectKey"
