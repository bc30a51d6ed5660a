"""GET /attachments/jobs: find a job by issue, object, S3 file or status, newest first, page by page.

Over the local API front and the jobs table in moto, created with the indexes template.yaml declares.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from assets_attach.core import retry_policy
from assets_attach.core.s3_drop import Drop
from devstack.lambda_local import LocalWorker
from devstack.stack import LocalStack
from devstack.webhook_client import list_jobs, post


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retry_policy, "BACKOFF_BASE_SECONDS", 0.05)


def listed(api: str, stack: LocalStack, **params: str | int) -> list[str]:
    """Every job id of a listing, following nextCursor page by page; checks each page's shape and order."""
    ids: list[str] = []
    cursor: str | None = None
    for _ in range(20):
        reply = list_jobs(api, stack, **params, **({"cursor": cursor} if cursor else {}))
        assert reply.status_code == 200, reply.text
        page = reply.json()
        assert set(page) <= {"jobs", "nextCursor"}
        assert len(page["jobs"]) <= int(params.get("limit", 20))
        stamps = [job["createdAt"] for job in page["jobs"]]
        assert stamps == sorted(stamps, reverse=True), "newest first"
        ids += [job["jobId"] for job in page["jobs"]]
        cursor = page.get("nextCursor")
        if cursor is None:
            return ids
    raise AssertionError("the listing never ended")


@pytest.fixture
def jobs(stack: LocalStack, api: str, worker: LocalWorker) -> dict[str, str]:
    """Five jobs, oldest first: a (1234, SUP-1), b (1234 and 5678, SUP-1), c (5678, two files, SUP-2),
    d (object key HW-42, i.e. 1234, no issue), e (object 9999, which does not exist: failed, SUP-2)."""
    stack.sim.add_object("5678", "HW-43")
    for name in "abcde":
        stack.put(f"attachments/{name}.txt", name.encode())
    s3 = {name: {"bucket": stack.bucket, "key": f"attachments/{name}.txt"} for name in "abcde"}
    bodies = {
        "a": {"objectId": "1234", **s3["a"], "issueKey": "SUP-1"},
        "b": {"objectId": "1234, 5678", **s3["b"], "issueKey": "SUP-1"},
        "c": {"objectId": 5678, "files": [s3["c"], s3["a"]], "issueKey": "SUP-2"},
        "d": {"objectKey": "HW-42", **s3["d"]},
        "e": {"objectId": "9999", **s3["e"], "issueKey": "SUP-2"},
    }
    ids = {}
    for name, body in bodies.items():
        reply = post(api, stack, body)
        assert reply.status_code == 202, reply.text
        ids[name] = reply.json()["jobId"]
    worker.drain()
    return ids


def test_every_filter_finds_its_jobs_newest_first_page_by_page(
    stack: LocalStack, api: str, jobs: dict[str, str]
) -> None:
    def names(**params: str | int) -> str:
        by_id = {job_id: name for name, job_id in jobs.items()}
        return "".join(by_id[job_id] for job_id in listed(api, stack, **params))

    assert names() == "edcba"
    assert names(limit=2) == "edcba"  # three pages
    assert names(issueKey="SUP-1") == "ba"
    assert names(issueKey="sup-2", limit=1) == "ec"
    assert names(objectId="1234", limit=1) == "dba"  # d named its object by key: found once resolved
    assert names(objectId=f"{stack.sim.workspace_id}:5678") == "cb"
    assert names(bucket=stack.bucket, key="attachments/a.txt") == "ca"
    assert names(status="failed") == "e"
    assert names(status="succeeded", limit=3) == "dcba"
    # Filters beyond the index's own are checked on each job read.
    assert names(issueKey="SUP-2", status="succeeded") == "c"
    assert names(objectId="1234", issueKey="SUP-1", limit=1) == "ba"
    assert names(bucket=stack.bucket, key="attachments/a.txt", objectId="1234") == "a"
    assert names(objectId="4242") == ""


def test_a_page_carries_the_job_views_and_a_cursor_only_when_more_follow(
    stack: LocalStack, api: str, jobs: dict[str, str]
) -> None:
    first = list_jobs(api, stack, issueKey="SUP-1", limit=1).json()
    [job] = first["jobs"]
    assert job["jobId"] == jobs["b"]
    assert job["status"] == "succeeded" and job["issueKey"] == "SUP-1"
    assert {f["objectId"] for f in job["files"]} == {"1234", "5678"}
    last = list_jobs(api, stack, issueKey="SUP-1", limit=1, cursor=first["nextCursor"]).json()
    assert [j["jobId"] for j in last["jobs"]] == [jobs["a"]]
    assert "nextCursor" not in last


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"cursor": "bm90IGEgY3Vyc29y"}, "cursor"),
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"status": "done"}, "status"),
        ({"bucket": "b-only"}, "key"),
        ({"objectid": "1234"}, "objectid"),
        ({"objectId": "HW-42"}, "objectId"),
    ],
)
def test_a_bad_listing_is_a_400_naming_the_parameter(
    stack: LocalStack, api: str, params: dict[str, Any], field: str
) -> None:
    reply = list_jobs(api, stack, **params)
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["field"] == field
    assert error["code"] == "bad_request" and error["message"]


def test_a_cursor_is_good_only_for_the_listing_it_came_from(stack: LocalStack, api: str, jobs: dict[str, str]) -> None:
    cursor = list_jobs(api, stack, objectId="1234", limit=1).json()["nextCursor"]
    assert list_jobs(api, stack, objectId="1234", limit=1, cursor=cursor).status_code == 200
    for other in ({"objectId": "5678"}, {"issueKey": "SUP-1"}, {}, {"status": "failed"}):
        reply = list_jobs(api, stack, **other, cursor=cursor)
        assert reply.status_code == 400, reply.text
        assert reply.json()["error"]["field"] == "cursor"


def test_the_listing_needs_the_webhook_token(stack: LocalStack, api: str) -> None:
    import requests

    reply = requests.get(f"{api}/attachments/jobs", headers={"Authorization": "Bearer nope"}, timeout=30)
    assert reply.status_code == 401
    assert reply.json()["error"]["field"] == "Authorization"


def test_an_s3_drops_job_is_found_by_its_bucket_and_key(stack: LocalStack, api: str, worker: LocalWorker) -> None:
    """Its id is derived from bucket, key and the event's version (moto's events carry neither version nor
    sequencer: then the ETag), as s3_drop.Drop.job_id and the README say."""
    stack.enable_s3_notifications()
    worker.drain()  # S3's test event
    key = "attachments/1234/Lieferschein März.pdf"
    etag = stack.put(key, b"%PDF drop", "application/pdf")["ETag"].strip('"')
    worker.drain()

    [job_id] = listed(api, stack, bucket=stack.bucket, key=key)
    assert listed(api, stack, objectId="1234") == [job_id]
    drop = Drop(bucket=stack.bucket, key=key, version_id=None, sequencer=None, etag=etag)
    assert job_id == drop.job_id == hashlib.sha256(f"{stack.bucket}\n{key}\n{etag}".encode()).hexdigest()[:32]
