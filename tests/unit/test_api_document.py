"""openapi.json is the webhook's contract as a document: generated from the models the handler uses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from openapi_spec_validator import OpenAPIV31SpecValidator, validate

from assets_attach import errors
from assets_attach.api_document import build, render
from assets_attach.api_models import JobView
from assets_attach.attach_request import AttachRequestBody
from assets_attach.errors import error_codes
from assets_attach.job_listing import QUERY_FIELDS
from assets_attach.job_record import FileRecord, JobRecord

COMMITTED = Path(__file__).resolve().parents[2] / "openapi.json"


def test_the_committed_document_is_what_the_models_generate() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == render(), "run `make openapi` and commit openapi.json"


def test_the_document_names_every_request_field_and_every_answer() -> None:
    document: dict[str, Any] = build()
    body = document["components"]["schemas"]["AttachRequestBody"]["properties"]
    assert set(body) == set(AttachRequestBody.model_fields)
    assert {"objectId", "objectKey", "jiraAttachments", "wait", "files"} <= set(body)
    answers = document["paths"]["/attachments"]["post"]["responses"]
    assert set(answers) == {"200", "202", "422", "400", "401", "403", "404", "409", "413", "415", "500", "503"}
    assert set(document["paths"]["/attachments/jobs/{jobId}"]["get"]["responses"]) == {
        "200",
        "401",
        "404",
        "500",
        "503",
    }
    listing = document["paths"]["/attachments/jobs"]["get"]
    assert set(listing["responses"]) == {"200", "400", "401", "500", "503"}
    assert [p["name"] for p in listing["parameters"]] == list(QUERY_FIELDS)
    assert json.loads(json.dumps(document)) == document  # plain JSON throughout


def test_the_document_is_valid_openapi_3_1() -> None:
    """openapi-spec-validator, as code generators and API gateways would read it."""
    validate(build())
    assert list(OpenAPIV31SpecValidator(build()).iter_errors()) == []


def test_error_codes_are_enumerated_from_the_error_classes() -> None:
    schemas = build()["components"]["schemas"]
    codes = schemas["ErrorDetail"]["properties"]["code"]["enum"]
    assert codes == error_codes() and len(codes) == len(set(codes))
    assert {"bad_request", "unauthorized", "unavailable", "internal_error", "not_found", "source_deleted"} <= set(codes)
    assert "link_busy" not in codes and "pair_busy" not in codes  # not failures: a job continues later
    [text] = [b for b in schemas["FileView"]["properties"]["errorCode"]["anyOf"] if b.get("type") == "string"]
    assert text["enum"] == error_codes(files_only=True)
    assert {"source_deleted", "object_not_found", "integrity_mismatch"} <= set(text["enum"])
    assert "unauthorized" not in text["enum"]  # the API's own refusals are never a file's outcome
    every_class = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.AttachError)]
    assert {c.code for c in every_class if not issubclass(c, errors.ContinueLaterError)} <= set(codes)


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
    assert view["summary"] == "1 of 1 attached."
    assert view["files"] == [
        {"objectId": "1", "jiraAttachmentId": "10000", "filename": "a.pdf", "size": 3, "status": "attached"}
    ]
