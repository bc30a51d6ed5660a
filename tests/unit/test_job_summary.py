"""The job view's summary and the error answers' messages: sentences a Jira rule prints as they are."""

from __future__ import annotations

import pytest

from assets_attach.errors import AtlassianError, ObjectNotFoundError, SourceDeletedError
from assets_attach.job_record import FileRecord, JobRecord
from assets_attach.sentences import as_sentence


def job(status: str, *files: FileRecord, error: str | None = None) -> JobRecord:
    return JobRecord.model_validate(
        {"jobId": "j1", "status": status, "files": files, "createdAt": "t", "updatedAt": "t", "error": error}
    )


def pair(name: str, status: str = "attached", object_id: str = "1234", error: str | None = None) -> FileRecord:
    return FileRecord(objectId=object_id, filename=name, status=status, error=error)  # type: ignore[arg-type]


DELETED = "s3://exports/report.pdf was deleted after the request was accepted"


@pytest.mark.parametrize(
    ("record", "summary"),
    [
        (job("succeeded", pair("a.pdf"), pair("b.pdf")), "2 of 2 attached."),
        (
            job("failed", pair("a.pdf"), pair("b.pdf"), pair("report.pdf", "failed", error=DELETED)),
            f"2 of 3 attached; report.pdf: {DELETED}.",
        ),
        (
            job(
                "failed",
                pair("a.pdf", object_id="1234"),
                pair("a.pdf", "failed", object_id="5678", error="Assets object 5678 not found (HTTP 404)"),
            ),
            "1 of 2 attached; a.pdf on object 5678: Assets object 5678 not found (HTTP 404).",
        ),
        (
            job("failed", *[pair(f"{n}.pdf", "failed", error="gone.") for n in range(5)]),
            "0 of 5 attached; 0.pdf: gone; 1.pdf: gone; 2.pdf: gone; 2 more failed.",
        ),
        (job("failed", pair("a.pdf", "pending"), error="the job could not be queued"), "0 of 1 attached; the job "
         "could not be queued."),
        (job("running", pair("a.pdf"), pair("b.pdf", "uploading")), "Running: 1 of 2 attached so far."),
        (job("queued", pair("a.pdf", "pending")), "Queued: 0 of 1 attached so far."),
    ],
)  # fmt: skip
def test_a_summary_for_each_state(record: JobRecord, summary: str) -> None:
    assert record.view().summary == summary
    assert record.public_view()["summary"] == summary


def test_a_long_reason_is_clipped() -> None:
    summary = job("failed", pair("a.pdf", "failed", error="x" * 1000)).view().summary
    assert len(summary) < 260 and summary.endswith("….")


@pytest.mark.parametrize(
    ("message", "field", "sentence"),
    [
        ("is required (or give s3Uri)", "bucket", "bucket is required (or give s3Uri)."),
        ("must be true, false or a number of seconds from 1 to 25", "wait", "wait must be true, false or a number "
         "of seconds from 1 to 25."),
        ("names a folder, not a file", "files[1].key", "files[1].key names a folder, not a file."),
        ("the body is not valid JSON (Expecting value)", "body", "The body is not valid JSON (Expecting value)."),
        ("give exactly one of objectId and objectKey", "objectId", "Give exactly one of objectId and objectKey."),
        ("'abc' is not an Assets object id", "objectId", "'abc' is not an Assets object id."),
        ("files[0].extra: is not a known field", "files[0].extra", "files[0].extra: is not a known field."),
        ("s3://b/k does not exist", "key", "s3://b/k does not exist."),
        ("Already a sentence.", None, "Already a sentence."),
    ],
)  # fmt: skip
def test_messages_become_sentences(message: str, field: str | None, sentence: str) -> None:
    assert as_sentence(message, field) == sentence


def test_bytes_sent_shows_only_while_the_file_uploads() -> None:
    """A record keeps the last progress it noted; the view must not show it once the file is done."""
    files = [
        FileRecord(objectId="1", filename="a", size=10, status=status, bytesSent=4)
        for status in ("uploading", "linking", "attached", "failed")
    ]
    view = job("running", *files).public_view()
    assert [f.get("bytesSent") for f in view["files"]] == [4, None, None, None]


def test_what_the_request_named_is_reported_without_the_step_that_noticed_it() -> None:
    missing = ObjectNotFoundError("Assets object 9999 not found", step="credentials", status=404, field="objectId")
    assert str(missing) == "Assets object 9999 not found (HTTP 404)"
    deleted = SourceDeletedError("s3://b/k was deleted after the request was accepted", step="s3-head")
    assert str(deleted) == "s3://b/k was deleted after the request was accepted"
    assert str(AtlassianError("Atlassian answered 502", step="upload", status=502)).startswith("upload: ")
