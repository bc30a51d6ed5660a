"""openapi.json is the webhook's contract as a document: generated from the models the handler uses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from assets_attach.api_document import build, render
from assets_attach.attach_request import AttachRequestBody
from assets_attach.jobs import FileRecord, JobRecord, JobView

COMMITTED = Path(__file__).resolve().parents[2] / "openapi.json"


def test_the_committed_document_is_what_the_models_generate() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == render(), "run `make openapi` and commit openapi.json"


def test_the_document_names_every_request_field_and_every_answer() -> None:
    document: dict[str, Any] = build()
    body = document["components"]["schemas"]["AttachRequestBody"]["properties"]
    assert set(body) == set(AttachRequestBody.model_fields)
    assert {"objectId", "objectKey", "jiraAttachments", "wait", "files"} <= set(body)
    answers = document["paths"]["/attachments"]["post"]["responses"]
    assert set(answers) == {"200", "202", "422", "400", "401", "403", "404", "409", "413", "415", "503"}
    assert json.loads(json.dumps(document)) == document  # plain JSON throughout


def test_a_job_view_is_what_the_document_describes() -> None:
    record = JobRecord(
        jobId="j1",
        status="succeeded",
        files=[FileRecord(objectId="1", jiraAttachmentId="10000", filename="a.pdf", size=3, status="attached")],
        createdAt="t",
        updatedAt="t",
    )
    view = record.public_view()
    assert JobView.model_validate(view).model_dump(exclude_none=True) == view
    assert view["files"] == [
        {"objectId": "1", "jiraAttachmentId": "10000", "filename": "a.pdf", "size": 3, "status": "attached"}
    ]
