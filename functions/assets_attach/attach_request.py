"""The webhook's JSON body: its shape (pydantic) and its cross-field rules, each error naming its field."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError

from .errors import BadRequestError
from .filenames import check_filename
from .object_ids import MAX_OBJECTS, listed_items, parse_object_ids, parse_object_keys
from .sources import JIRA_ATTACHMENT_ID, parse_s3_uri

MAX_FILES = 20
MAX_PAIRS = 50  # (file, object) pairs per request
MAX_WAIT_SECONDS = 25  # API Gateway ends a request after 29 s
MAX_KEY_BYTES = 1024  # S3's limit on a key, in UTF-8 bytes
_ISSUE_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]*-[1-9][0-9]*")


class S3File(BaseModel):
    """An S3 object to attach: ``bucket`` and ``key``, or ``s3Uri``; its name and comment in Assets."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    bucket: StrictStr | None = Field(default=None, min_length=3, max_length=63)
    key: StrictStr | None = Field(default=None, min_length=1, max_length=1024)
    s3Uri: StrictStr | None = None
    filename: StrictStr | None = Field(default=None, min_length=1, max_length=255)
    comment: StrictStr | None = Field(default=None, max_length=2000)


def _one_or_many(item: dict[str, Any], description: str) -> dict[str, Any]:
    """The JSON schema of a field that takes one value, a list of them, or one string of several."""
    return {
        "description": description,
        "anyOf": [
            item,
            {"type": "string"},
            {"type": "array", "items": item, "minItems": 1, "maxItems": MAX_OBJECTS},
            {"type": "null"},  # null is as good as leaving the field out
        ],
    }


class AttachRequestBody(S3File):
    """``POST /attachments``: the JSON body as the webhook validates it (openapi.json is generated from it)."""

    objectId: Any = Field(  # checked by parse_object_ids, which names the item
        default=None,
        json_schema_extra=_one_or_many(
            {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "string"}]},
            "Assets object id(s): 1234, '1234' or '<workspaceId>:1234'; several as a list or one string "
            f"separated by commas and/or whitespace (at most {MAX_OBJECTS})",
        ),
    )
    objectKey: Any = Field(
        default=None,
        json_schema_extra=_one_or_many(
            {"type": "string"}, "instead of objectId: object key(s) such as 'HW-42', resolved through AQL"
        ),
    )
    files: list[S3File] | None = Field(default=None, min_length=1, max_length=MAX_FILES)
    issueKey: StrictStr | None = Field(default=None, max_length=255)
    jiraAttachments: Any = Field(
        default=None,
        json_schema_extra={
            "description": f"Jira attachment ids (at most {MAX_FILES} files in all): a list, or one string separated "
            "by commas and/or whitespace as {{issue.attachment.id}} renders ('10000, 10001'); or 'all' with issueKey",
            "anyOf": [
                {"type": "string"},
                {
                    "type": "array",
                    "items": {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "string"}]},
                    "minItems": 1,
                    "maxItems": MAX_FILES,
                },
                {"type": "null"},
            ],
        },
    )
    wait: Any = Field(
        default=None,
        json_schema_extra={
            "description": f"true (up to {MAX_WAIT_SECONDS} s) or seconds: answer when the job has finished",
            "anyOf": [
                {"type": "boolean"},
                {"type": "number", "minimum": 1, "maximum": MAX_WAIT_SECONDS},
                {"type": "null"},
            ],
        },
    )


@dataclass(frozen=True)
class WantedFile:
    bucket: str
    key: str
    filename: str | None
    comment: str
    field_prefix: str  # "" or "files[2]." so later errors name the right field


@dataclass(frozen=True)
class WantedJira:
    """Jira attachments asked for: ``ids``, or every attachment of the request's issue (``all_of_issue``)."""

    ids: tuple[str, ...]
    all_of_issue: bool
    filename: str | None  # the request's filename, for its only file
    comment: str


@dataclass(frozen=True)
class AttachRequest:
    object_ids: tuple[str, ...]
    object_keys: tuple[str, ...]
    files: tuple[WantedFile, ...]  # S3 objects
    jira: WantedJira | None
    issue_key: str | None
    wait_seconds: float = 0.0  # 0: answer as soon as the job is queued

    @property
    def objects(self) -> tuple[str, ...]:
        return self.object_ids or self.object_keys


def _reason(error: Any) -> str:
    return "is not a known field" if error["type"] == "extra_forbidden" else str(error["msg"])


def field_name(loc: tuple[int | str, ...]) -> str:
    """``("files", 0, "key")`` → ``files[0].key``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _wanted(fields: S3File, prefix: str) -> WantedFile:
    if fields.s3Uri is not None:
        if fields.bucket or fields.key:
            raise BadRequestError("give s3Uri, or bucket and key, not both", field=f"{prefix}s3Uri")
        bucket, key = parse_s3_uri(fields.s3Uri, f"{prefix}s3Uri")
    elif not fields.bucket:
        raise BadRequestError("is required (or give s3Uri)", field=f"{prefix}bucket")
    elif not fields.key:
        raise BadRequestError("is required (or give s3Uri)", field=f"{prefix}key")
    else:
        bucket, key = fields.bucket, fields.key
    key_field = f"{prefix}s3Uri" if fields.s3Uri is not None else f"{prefix}key"
    if key.endswith("/"):
        raise BadRequestError("names a folder, not a file", field=key_field)
    if len(key.encode()) > MAX_KEY_BYTES:
        raise BadRequestError(f"the S3 key is longer than S3's {MAX_KEY_BYTES} UTF-8 bytes", field=key_field)
    filename = check_filename(fields.filename, f"{prefix}filename") if fields.filename is not None else None
    return WantedFile(bucket, key, filename, fields.comment or "", prefix)


def _jira_ids(value: Any) -> tuple[str, ...]:
    """The ids of a list, or of one string separated by commas and/or whitespace (``{{issue.attachment.id}}``)."""
    items = listed_items(value, "jiraAttachments") if isinstance(value, (list, str)) else []
    if not items:
        raise BadRequestError(
            "must list Jira attachment ids ('10000, 10001' or [10000, 10001]), or be 'all' with issueKey",
            field="jiraAttachments",
        )
    if len(items) > MAX_FILES:
        raise BadRequestError(f"at most {MAX_FILES} attachments per request", field="jiraAttachments")
    ids = []
    for item, field in items:
        text = str(item).strip() if isinstance(item, (str, int)) and not isinstance(item, bool) else ""
        if not JIRA_ATTACHMENT_ID.fullmatch(text):
            raise BadRequestError(f"{str(item)[:40]!r} is not a Jira attachment id", field=field)
        ids.append(text)
    return tuple(dict.fromkeys(ids))


def _wait_seconds(value: Any) -> float:
    if value is None or value is False:
        return 0.0
    if value is True:
        return float(MAX_WAIT_SECONDS)
    if isinstance(value, (int, float)) and 1 <= value <= MAX_WAIT_SECONDS:
        return float(value)
    raise BadRequestError(f"must be true, false or a number of seconds from 1 to {MAX_WAIT_SECONDS}", field="wait")


def parse_attach_request(data: Any, workspace_id: Callable[[], str]) -> AttachRequest:
    """The request, checked; ``workspace_id()`` (the configured workspace) is asked only for a prefixed id."""
    if not isinstance(data, dict):
        raise BadRequestError("the body must be a JSON object", field="body")
    try:
        body = AttachRequestBody.model_validate(data)
    except ValidationError as e:
        errors = e.errors(include_input=False, include_url=False)
        first = field_name(errors[0]["loc"]) or "body"
        message = "; ".join(f"{field_name(err['loc']) or 'body'}: {_reason(err)}" for err in errors)
        raise BadRequestError(message, field=first) from None

    if (body.objectId is None) == (body.objectKey is None):
        raise BadRequestError("give exactly one of objectId and objectKey", field="objectId")
    object_ids = parse_object_ids(body.objectId, workspace_id) if body.objectId is not None else ()
    object_keys = parse_object_keys(body.objectKey) if body.objectKey is not None else ()

    jira: WantedJira | None = None
    s3_single = any(value is not None for value in (body.bucket, body.key, body.s3Uri))
    if body.jiraAttachments is not None:
        all_of_issue = body.jiraAttachments == "all"
        if all_of_issue and not _ISSUE_KEY.fullmatch(body.issueKey or ""):
            raise BadRequestError(
                "'all' takes the attachments of issueKey: give an issue key like SUP-12", field="issueKey"
            )
        ids = () if all_of_issue else _jira_ids(body.jiraAttachments)
        # The request's filename names a Jira attachment only when no S3 file takes it; its comment goes on all.
        filename = None if s3_single or body.filename is None else check_filename(body.filename, "filename")
        jira = WantedJira(ids, all_of_issue, filename, body.comment or "")

    single = any(getattr(body, name) is not None for name in S3File.model_fields)
    if body.files is not None:
        if single:
            raise BadRequestError("give files, or the single-file fields, not both", field="files")
        files = tuple(_wanted(f, f"files[{i}].") for i, f in enumerate(body.files))
    elif s3_single or jira is None:
        files = (_wanted(body, ""),)
    else:
        files = ()
    return AttachRequest(object_ids, object_keys, files, jira, body.issueKey, _wait_seconds(body.wait))


def check_counts(request: AttachRequest, jira_files: int, objects: int) -> None:
    """At most MAX_FILES files and MAX_PAIRS (file, object) pairs, once the Jira attachments are counted and the
    ``objects`` resolved (each once)."""
    files = len(request.files) + jira_files
    if files > MAX_FILES:
        raise BadRequestError(
            f"{files} files; at most {MAX_FILES} per request, S3 and Jira together", field="jiraAttachments"
        )
    pairs = files * objects
    if pairs > MAX_PAIRS:
        raise BadRequestError(
            f"{files} file(s) × {objects} objects = {pairs} attachments; at most {MAX_PAIRS} per request",
            field="objectKey" if request.object_keys else "objectId",
        )
    if request.jira and request.jira.filename is not None and jira_files != 1:
        raise BadRequestError(f"names one file, and the request has {jira_files} Jira attachments", field="filename")
