"""The rules of GET /attachments/jobs: which index serves a listing, what the rest filters, and cursors."""

from __future__ import annotations

import pytest

from assets_attach.errors import BadRequestError
from assets_attach.job_listing import (
    REF_INDEX,
    STATUS_INDEX,
    JobQuery,
    decode_cursor,
    encode_cursor,
    index_item,
    job_refs,
    parse_job_query,
    position_of,
)
from assets_attach.job_record import FileRecord, JobRecord


def _workspace() -> str:
    return "ws-1"


def record(**fields: object) -> JobRecord:
    files = fields.pop("files", [FileRecord(objectId="1234", bucket="bkt", key="a/b.pdf", filename="b.pdf")])
    return JobRecord.model_validate(
        {"jobId": "j1", "status": "failed", "files": files, "createdAt": "t", "updatedAt": "t", **fields}
    )


def test_a_job_is_found_by_everything_it_names_each_once() -> None:
    job = record(
        issueKey="sup-7",
        files=[
            FileRecord(objectId="1234", bucket="bkt", key="a/b.pdf", filename="b.pdf"),
            FileRecord(objectId="5678", bucket="bkt", key="a/b.pdf", filename="b.pdf"),
            FileRecord(objectId="1234", jiraAttachmentId="10000", filename="c.png"),
            FileRecord(objectKey="HW-42", jiraAttachmentId="10000", filename="c.png"),  # not resolved yet
        ],
    )
    assert job_refs(job) == ["all", "issue:SUP-7", "object:1234", "object:5678", "s3://bkt/a/b.pdf"]
    item = index_item("j1", "2026-12-08T10:00:00.000Z", "object:1234", 99)
    assert item == {
        "jobId": "job-ref:j1:object:1234",
        "ref": "object:1234",
        "createdAt": "2026-12-08T10:00:00.000Z",
        "job": "j1",
        "expiresAt": 99,
    }


@pytest.mark.parametrize(
    ("params", "index"),
    [
        ({}, (REF_INDEX, "ref", "all")),
        ({"status": "failed"}, (STATUS_INDEX, "status", "failed")),
        ({"issueKey": "sup-7", "status": "failed"}, (REF_INDEX, "ref", "issue:SUP-7")),
        ({"objectId": "ws-1:1234", "issueKey": "SUP-7"}, (REF_INDEX, "ref", "object:1234")),
        ({"bucket": "bkt", "key": "a/b.pdf", "objectId": "1234"}, (REF_INDEX, "ref", "s3://bkt/a/b.pdf")),
    ],
)
def test_the_most_selective_filter_picks_the_index(params: dict[str, str], index: tuple[str, str, str]) -> None:
    query = parse_job_query(params, _workspace)
    assert query.index == index
    assert query.filtered == (len(set(params) - {"key"}) > 1)


def test_filters_beyond_the_index_are_checked_on_each_record() -> None:
    query = parse_job_query({"objectId": "1234", "issueKey": "SUP-7", "status": "failed"}, _workspace)
    assert query.matches(record(issueKey="SUP-7"))
    assert not query.matches(record(issueKey="SUP-8"))
    assert not query.matches(record(issueKey="SUP-7", status="succeeded"))
    assert not query.matches(record(issueKey="SUP-7", files=[FileRecord(objectId="9", filename="x")]))
    s3 = parse_job_query({"bucket": "bkt", "key": "a/b.pdf"}, _workspace)
    assert s3.matches(record())
    assert not parse_job_query({"bucket": "bkt", "key": "a/b"}, _workspace).matches(record())


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"status": "done"}, "status"),
        ({"objectId": "HW-42"}, "objectId"),
        ({"objectId": "ws-2:1234"}, "objectId"),  # another workspace's object
        ({"bucket": "bkt"}, "key"),
        ({"key": "a/b.pdf"}, "bucket"),
        ({"issueKey": " "}, "issueKey"),
        ({"issueKey": "K" * 256}, "issueKey"),
        ({"issuekey": "SUP-7"}, "issuekey"),  # a typo is named, not ignored
        ({"cursor": "not base64 json"}, "cursor"),
    ],
)
def test_refusals_name_the_parameter_in_a_sentence(params: dict[str, str], field: str) -> None:
    with pytest.raises(BadRequestError) as caught:
        parse_job_query(params, _workspace)
    assert caught.value.field == field
    assert caught.value.message


def test_limit_defaults_to_20_and_takes_1_to_100() -> None:
    assert parse_job_query(None, _workspace).limit == 20
    assert parse_job_query({"limit": "1"}, _workspace).limit == 1
    assert parse_job_query({"limit": "100"}, _workspace).limit == 100


def test_a_cursor_goes_back_to_the_position_it_was_made_from() -> None:
    query = parse_job_query({"objectId": "1234"}, _workspace)
    stamp = "2026-12-08T10:00:00.000Z"
    entry = {"jobId": "job-ref:j9:object:1234", "ref": "object:1234", "createdAt": stamp, "job": "j9"}
    cursor = encode_cursor(position_of(entry, query))
    assert "=" not in cursor and "/" not in cursor and "+" not in cursor  # safe in a query string as it is
    again = parse_job_query({"objectId": "1234", "cursor": cursor}, _workspace)
    assert again.start == {"jobId": "job-ref:j9:object:1234", "ref": "object:1234", "createdAt": stamp}
    by_status = JobQuery(status="failed")
    position = {"jobId": "j9", "status": "failed", "createdAt": "t"}
    assert decode_cursor(encode_cursor(position), by_status) == position


@pytest.mark.parametrize(
    "position",
    [
        {"jobId": "job-ref:j9:object:5678", "ref": "object:5678", "createdAt": "t"},  # another listing's
        {"jobId": "j9", "status": "failed", "createdAt": "t"},  # another index's
        {"jobId": "job-ref:j9:object:1234", "ref": "object:1234"},  # incomplete
        {"jobId": "job-ref:j9:object:1234", "ref": "object:1234", "createdAt": "t", "more": "x"},
    ],
)
def test_a_cursor_of_another_listing_is_refused(position: dict[str, str]) -> None:
    with pytest.raises(BadRequestError) as caught:
        parse_job_query({"objectId": "1234", "cursor": encode_cursor(position)}, _workspace)
    assert caught.value.field == "cursor"


@pytest.mark.parametrize("cursor", ["", "%%%", "bnVsbA", "WzEsMl0", "eyJqb2JJZCI6IDF9"])  # null, [1,2], {"jobId": 1}
def test_a_cursor_that_is_not_one_is_refused(cursor: str) -> None:
    with pytest.raises(BadRequestError) as caught:
        decode_cursor(cursor, JobQuery())
    assert caught.value.field == "cursor"
