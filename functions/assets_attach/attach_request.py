"""The webhook's JSON body: its shape (pydantic) and its cross-field rules, each error naming its field."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError

from .aws.s3_source import parse_s3_uri
from .errors import BadRequestError
from .filenames import check_filename
from .object_ids import normalize_object_id, normalize_object_key

MAX_FILES = 20
MAX_KEY_BYTES = 1024  # S3's limit on a key, in UTF-8 bytes


class _FileFields(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    bucket: StrictStr | None = Field(default=None, min_length=3, max_length=63)
    key: StrictStr | None = Field(default=None, min_length=1, max_length=1024)
    s3Uri: StrictStr | None = None
    filename: StrictStr | None = Field(default=None, min_length=1, max_length=255)
    comment: StrictStr | None = Field(default=None, max_length=2000)


class _Body(_FileFields):
    objectId: Any = None  # checked by normalize_object_id, which names the field
    objectKey: StrictStr | None = None
    files: list[_FileFields] | None = Field(default=None, min_length=1, max_length=MAX_FILES)
    issueKey: StrictStr | None = Field(default=None, max_length=255)


@dataclass(frozen=True)
class WantedFile:
    bucket: str
    key: str
    filename: str | None
    comment: str
    field_prefix: str  # "" or "files[2]." so later errors name the right field


@dataclass(frozen=True)
class AttachRequest:
    object_id: str | None
    object_key: str | None
    files: tuple[WantedFile, ...]
    issue_key: str | None


def _reason(error: Any) -> str:
    return "is not a known field" if error["type"] == "extra_forbidden" else str(error["msg"])


def field_name(loc: tuple[int | str, ...]) -> str:
    """``("files", 0, "key")`` → ``files[0].key``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _wanted(fields: _FileFields, prefix: str) -> WantedFile:
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


def parse_attach_request(data: Any, workspace_id: Callable[[], str]) -> AttachRequest:
    """The request, checked; ``workspace_id()`` (the configured workspace) is asked only for a prefixed id."""
    if not isinstance(data, dict):
        raise BadRequestError("the body must be a JSON object", field="body")
    try:
        body = _Body.model_validate(data)
    except ValidationError as e:
        errors = e.errors(include_input=False, include_url=False)
        first = field_name(errors[0]["loc"]) or "body"
        message = "; ".join(f"{field_name(err['loc']) or 'body'}: {_reason(err)}" for err in errors)
        raise BadRequestError(message, field=first) from None

    if (body.objectId is None) == (body.objectKey is None):
        raise BadRequestError("give exactly one of objectId and objectKey", field="objectId")
    object_id = normalize_object_id(body.objectId, workspace_id) if body.objectId is not None else None
    object_key = normalize_object_key(body.objectKey) if body.objectKey is not None else None

    single = any(getattr(body, name) is not None for name in _FileFields.model_fields)
    if body.files is not None:
        if single:
            raise BadRequestError("give files, or the single-file fields, not both", field="files")
        files = tuple(_wanted(f, f"files[{i}].") for i, f in enumerate(body.files))
    else:
        files = (_wanted(body, ""),)
    return AttachRequest(object_id, object_key, files, body.issueKey)
