"""The webhook's API as an OpenAPI 3.1 document, generated from the models the handler validates and answers with.

``python -m assets_attach.api_document > openapi.json`` (``make openapi``) writes the committed copy; a unit test
fails when the models and the committed document disagree.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Literal, get_args

from pydantic import BaseModel, Field
from pydantic.json_schema import models_json_schema

from . import __version__
from .api_models import JobStatus, JobView
from .attach_request import AttachRequestBody
from .errors import error_codes
from .job_listing import DEFAULT_LIMIT, MAX_ISSUE_KEY, MAX_LIMIT


class JobAccepted(BaseModel):
    """``202``: the job is durably queued (or the wait ran out); follow ``statusUrl``."""

    jobId: str
    status: Literal["queued"] = "queued"
    statusUrl: str


class JobList(BaseModel):
    """``GET /attachments/jobs``: a page of jobs, newest first; ``nextCursor`` (absent on the last page) fetches the
    next with the same filters."""

    jobs: list[JobView]
    nextCursor: str | None = Field(
        default=None, description="send as cursor, with the same filters, for the next page; absent on the last page"
    )


class ErrorDetail(BaseModel):
    code: str = Field(description="machine-readable, e.g. bad_request, source_not_found, file_too_large")
    message: str = Field(description="one sentence a rule can print as it is")
    field: str | None = Field(default=None, description="the request field at fault, e.g. files[1].key")


class ErrorReply(BaseModel):
    """Every refusal: the status says what kind, ``error.field`` which field."""

    error: ErrorDetail


def _reply(description: str, model: type[BaseModel]) -> dict[str, Any]:
    schema = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ERRORS = {
    "400": "a field is wrong (named in error.field), or the body is not valid JSON",
    "401": "missing or wrong webhook token",
    "403": "the bucket is not allowed, or the secret's account may not read the source",
    "404": "an S3 object, Jira attachment or Jira issue does not exist",
    "409": "the same request is being accepted right now; send it again",
    "413": "a file is over MAX_FILE_SIZE_BYTES",
    "415": "the body is not JSON",
    "500": "the service is misconfigured (config_error, …) or failed unexpectedly (internal_error); see its logs",
    "503": "unavailable: nothing was accepted or changed; send the same request again",
}
LIST_ERRORS = {
    "400": "a query parameter is wrong (named in error.field): a filter, limit, or a cursor of another listing"
}


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


def _with_error_codes(schemas: dict[str, Any]) -> dict[str, Any]:
    """The codes an answer can carry, as enums read from the error classes (errors.error_codes)."""
    from .aws import job_store  # noqa: F401 - its JobExistsError is a code too

    schemas["ErrorDetail"]["properties"]["code"]["enum"] = error_codes()
    error_code = schemas["FileView"]["properties"]["errorCode"]
    [text] = [branch for branch in error_code["anyOf"] if branch.get("type") == "string"]
    text["enum"] = error_codes(files_only=True)
    return schemas


def build() -> dict[str, Any]:
    _, schemas = models_json_schema(
        [
            (AttachRequestBody, "validation"),
            (JobAccepted, "serialization"),
            (JobView, "serialization"),
            (JobList, "serialization"),
            (ErrorReply, "serialization"),
        ],
        ref_template="#/components/schemas/{model}",
    )
    errors = {status: _reply(text, ErrorReply) for status, text in ERRORS.items()}
    always = {status: errors[status] for status in ("401", "500", "503")}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "assets-attach webhook",
            "version": __version__,
            "description": "Attach files from S3 or Jira to Jira Service Management Assets objects.",
        },
        "security": [{"webhookToken": []}],
        "paths": {
            "/attachments": {
                "post": {
                    "operationId": "createJob",
                    "summary": "Queue a job that attaches each file to each object once",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AttachRequestBody"}}},
                    },
                    "responses": {
                        "200": _reply("with wait: the job succeeded", JobView),
                        "202": _reply("the job is queued (with wait: it had not finished in time)", JobAccepted),
                        "422": _reply("with wait: the job failed; each file entry says why", JobView),
                        **errors,
                    },
                }
            },
            "/attachments/jobs/{jobId}": {
                "get": {
                    "operationId": "getJob",
                    "summary": "What happened to a job, one files entry per (file, object) pair",
                    "parameters": [{"name": "jobId", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "responses": {
                        "200": _reply("the job", JobView),
                        "404": _reply("no such job (or it expired: jobs are kept 30 days)", ErrorReply),
                        **always,
                    },
                }
            },
            "/attachments/jobs": {
                "get": {
                    "operationId": "listJobs",
                    "summary": "Find jobs by issue, Assets object, S3 file or status, newest first, a page at a time",
                    "description": "Filters combine; each is matched exactly (issueKey without regard to case). "
                    "A page may hold fewer than limit jobs when filters are combined: follow nextCursor until it "
                    "is absent.",
                    "parameters": [
                        _query("issueKey", "jobs of this Jira issue", {"type": "string", "maxLength": MAX_ISSUE_KEY}),
                        _query(
                            "objectId",
                            "jobs attaching to this Assets object (1234 or <workspaceId>:1234)",
                            {"type": "string"},
                        ),
                        _query("bucket", "with key: jobs of this S3 file (an S3 drop's job too)", {"type": "string"}),
                        _query("key", "with bucket: the S3 key", {"type": "string"}),
                        _query("status", "jobs in this status", {"type": "string", "enum": list(get_args(JobStatus))}),
                        _query(
                            "limit",
                            "jobs per page",
                            {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
                        ),
                        _query("cursor", "nextCursor of the previous page (same filters)", {"type": "string"}),
                    ],
                    "responses": {
                        "200": _reply("a page of jobs, newest first", JobList),
                        **{status: _reply(text, ErrorReply) for status, text in LIST_ERRORS.items()},
                        **always,
                    },
                }
            },
            "/attachments/jobs/{jobId}/retry": {
                "post": {
                    "operationId": "retryJob",
                    "summary": "Run a failed job again: its failed pairs only; the attached ones stay",
                    "parameters": [{"name": "jobId", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "responses": {
                        "202": _reply("the job is queued again", JobAccepted),
                        "401": errors["401"],
                        "404": _reply("no such job", ErrorReply),
                        "409": _reply("the job is not failed, or is being run again already", ErrorReply),
                        "503": errors["503"],
                    },
                }
            },
        },
        "components": {
            "schemas": _with_error_codes(schemas["$defs"]),
            "securitySchemes": {
                "webhookToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "one of the secret's webhookTokens",
                }
            },
        },
    }


def render() -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
