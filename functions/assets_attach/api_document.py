"""The webhook's API as an OpenAPI 3.1 document, generated from the models the handler validates and answers with.

``python -m assets_attach.api_document > openapi.json`` (``make openapi``) writes the committed copy; a unit test
fails when the models and the committed document disagree.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Literal

from pydantic import BaseModel, Field
from pydantic.json_schema import models_json_schema

from . import __version__
from .attach_request import AttachRequestBody
from .jobs import JobView


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
    message: str
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
    "503": "nothing was accepted; send the same request again",
}


def build() -> dict[str, Any]:
    _, schemas = models_json_schema(
        [
            (AttachRequestBody, "validation"),
            (JobAccepted, "serialization"),
            (JobView, "serialization"),
            (ErrorReply, "serialization"),
        ],
        ref_template="#/components/schemas/{model}",
    )
    errors = {status: _reply(text, ErrorReply) for status, text in ERRORS.items()}
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
                        "401": errors["401"],
                        "404": _reply("no such job", ErrorReply),
                    },
                }
            },
        },
        "components": {
            "schemas": schemas["$defs"],
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
