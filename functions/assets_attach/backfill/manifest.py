"""The backfill manifest: CSV (with a header) or JSON Lines, one row per (source, object), read as a stream.

Columns: ``source`` (``s3://bucket/key`` or ``jira:<attachmentId>``), ``objectId`` or ``objectKey`` (one object),
optional ``filename`` and ``comment``. A row that cannot be sent is a ``BadRow`` naming its line and the reason;
the same (source, object) pair on a later line is a duplicate of the first. Nothing holds the whole manifest: a
row's identity is a 64-bit fingerprint, and ``Fingerprints`` keeps 8 bytes per row.
"""

from __future__ import annotations

import csv
import hashlib
import heapq
import json
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..attach_request import MAX_KEY_BYTES, AttachRequestBody
from ..errors import BadRequestError
from ..filenames import check_filename
from ..object_ids import normalize_object_id, normalize_object_key
from ..sources import JIRA_ATTACHMENT_ID, parse_s3_uri

COLUMNS = ("source", "objectId", "objectKey", "filename", "comment")
BadKind = Literal["invalid", "duplicate"]
_EXTRA = "(values beyond the header)"
_LIMITS = AttachRequestBody.model_fields  # the webhook's own limits on filename and comment


class ManifestError(BadRequestError):
    """The manifest as a whole cannot be read (no such file, an unknown column): nothing is sent."""

    code = "manifest_error"


@dataclass(frozen=True)
class Row:
    """One checked row: the source and the object as the webhook takes them."""

    line: int
    source: str  # s3://bucket/key or jira:<id>
    object_id: str | None  # as given (a workspace prefix is kept for the webhook to check)
    object_key: str | None
    filename: str | None = None
    comment: str = ""

    @property
    def bucket_key(self) -> tuple[str, str] | None:
        return parse_s3_uri(self.source) if self.source.startswith("s3://") else None

    @property
    def jira_id(self) -> str | None:
        return self.source.removeprefix("jira:") if self.source.startswith("jira:") else None

    @property
    def target(self) -> str:
        """The object, as rows are grouped and told apart: ``id:1234`` (prefix dropped) or ``key:HW-42``."""
        if self.object_id is not None:
            return "id:" + self.object_id.rpartition(":")[2]
        return f"key:{self.object_key}"

    @property
    def fingerprint(self) -> int:
        return fingerprint(self.source, self.target)


@dataclass(frozen=True)
class BadRow:
    line: int
    kind: BadKind
    reason: str


def fingerprint(*parts: str) -> int:
    return int.from_bytes(hashlib.blake2b("\0".join(parts).encode(), digest_size=8).digest(), "big")


class Fingerprints:
    """A set of 64-bit fingerprints at 8 bytes each: ``add`` them, ``seal()``, then ``in`` (a binary search)."""

    SORT_CHUNK = 1 << 13  # a chunk sorted as Python ints: 8,192 × ~40 bytes at a time

    def __init__(self, values: Iterable[int] = ()) -> None:
        self._values = array("Q", values)
        self._sealed = False

    def add(self, value: int) -> None:
        self._values.append(value)
        self._sealed = False

    def seal(self) -> Fingerprints:
        """Sort in chunks and merge, so that sorting holds no Python int per row."""
        if not self._sealed:
            n, step = len(self._values), self.SORT_CHUNK
            chunks = [array("Q", sorted(self._values[i : i + step])) for i in range(0, n, step)]
            self._values = array("Q", heapq.merge(*chunks))
            self._sealed = True
        return self

    def __contains__(self, value: object) -> bool:
        assert self._sealed, "seal() first"
        if not isinstance(value, int):
            return False
        i = bisect_left(self._values, value)
        return i < len(self._values) and self._values[i] == value

    def __len__(self) -> int:
        return len(self._values)

    def repeated(self) -> set[int]:
        """The values added more than once."""
        self.seal()
        values = self._values
        return {values[i] for i in range(1, len(values)) if values[i] == values[i - 1]}

    def distinct(self) -> int:
        self.seal()
        values = self._values
        return sum(1 for i in range(len(values)) if i == 0 or values[i] != values[i - 1])


def read_manifest(path: Path) -> Iterator[Row | BadRow]:
    """Each data row checked, in order; CSV or JSON Lines by the first character of the file."""
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as e:
        raise ManifestError(f"cannot read the manifest: {e.strerror}", field="MANIFEST") from None
    with handle:
        first = handle.read(1)
        while first.isspace():
            first = handle.read(1)
        handle.seek(0)
        raws = _json_lines(handle) if first == "{" else _csv_rows(handle)
        for line, raw in raws:
            yield raw if isinstance(raw, BadRow) else check_row(line, raw)


def _csv_rows(handle: Any) -> Iterator[tuple[int, dict[str, Any] | BadRow]]:
    reader = csv.DictReader(handle, restkey=_EXTRA)
    unknown = [c for c in reader.fieldnames or [] if c not in COLUMNS]
    if not reader.fieldnames or "source" not in reader.fieldnames or unknown:
        found = ", ".join(reader.fieldnames or []) or "nothing"
        raise ManifestError(
            f"line 1: the header must name the columns {', '.join(COLUMNS)} (source and objectId or objectKey "
            f"required); found {found[:200]}",
            field="MANIFEST",
        )
    end = reader.line_num
    for record in reader:
        start, end = end + 1, reader.line_num
        if _EXTRA in record:
            yield start, BadRow(start, "invalid", f"{len(record[_EXTRA])} value(s) more than the header's columns")
            continue
        yield start, {name: value for name, value in record.items() if value not in (None, "")}


def _json_lines(handle: Any) -> Iterator[tuple[int, dict[str, Any] | BadRow]]:
    for line, text in enumerate(handle, start=1):
        if not text.strip():
            continue
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            yield line, BadRow(line, "invalid", f"not valid JSON ({e.msg})")
            continue
        if not isinstance(data, dict):
            yield line, BadRow(line, "invalid", "must be a JSON object")
            continue
        unknown = [k for k in data if k not in COLUMNS]
        if unknown:
            yield line, BadRow(line, "invalid", f"{str(unknown[0])[:40]!r} is not a column ({', '.join(COLUMNS)})")
            continue
        yield line, {name: value for name, value in data.items() if value not in (None, "")}


def check_row(line: int, raw: dict[str, Any]) -> Row | BadRow:
    try:
        return _row(line, raw)
    except BadRequestError as e:
        return BadRow(line, "invalid", f"{e.field}: {e.message}" if e.field else e.message)


def _text(raw: dict[str, Any], name: str) -> str | None:
    value = raw.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequestError("must be a string", field=name)
    limit = next((m.max_length for m in _LIMITS[name].metadata if hasattr(m, "max_length")), None)
    if limit is not None and len(value) > limit:
        raise BadRequestError(f"is longer than {limit} characters", field=name)
    return value


def _source(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadRequestError("is required: s3://bucket/key or jira:<attachmentId>", field="source")
    value = value.strip()
    if value.startswith("jira:"):
        attachment_id = value.removeprefix("jira:").strip()
        if not JIRA_ATTACHMENT_ID.fullmatch(attachment_id):
            raise BadRequestError(f"{attachment_id[:40]!r} is not a Jira attachment id", field="source")
        return f"jira:{attachment_id}"
    if not value.startswith("s3://"):
        raise BadRequestError("must be s3://bucket/key or jira:<attachmentId>", field="source")
    bucket, key = parse_s3_uri(value, "source")
    if key.endswith("/"):
        raise BadRequestError("names a folder, not a file", field="source")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise BadRequestError(f"the S3 key is longer than S3's {MAX_KEY_BYTES} UTF-8 bytes", field="source")
    return f"s3://{bucket}/{key}"


def _row(line: int, raw: dict[str, Any]) -> Row:
    source = _source(raw.get("source"))
    given_id, given_key = raw.get("objectId"), raw.get("objectKey")
    if (given_id is None) == (given_key is None):
        raise BadRequestError("give exactly one of objectId and objectKey", field="objectId")
    object_id = object_key = None
    if given_id is not None:
        # Any workspace prefix passes here; the webhook checks that it is the stack's workspace.
        normalize_object_id(given_id, lambda: str(given_id).partition(":")[0].strip())
        object_id = str(given_id).strip()
    else:
        object_key = normalize_object_key(given_key)
    filename = _text(raw, "filename")
    return Row(
        line,
        source,
        object_id,
        object_key,
        check_filename(filename, "filename") if filename is not None else None,
        _text(raw, "comment") or "",
    )


def checked_rows(path: Path, repeated: set[int]) -> Iterator[Row | BadRow]:
    """The manifest's rows, where a later row with the pair of an earlier one (``repeated`` holds the
    fingerprints seen more than once) is a duplicate naming the first line."""
    first_line: dict[int, int] = {}
    for item in read_manifest(path):
        if isinstance(item, Row) and item.fingerprint in repeated:
            if item.fingerprint in first_line:
                yield BadRow(item.line, "duplicate", f"same source and object as line {first_line[item.fingerprint]}")
                continue
            first_line[item.fingerprint] = item.line
        yield item


def scan(path: Path) -> tuple[Fingerprints, int]:
    """One pass: the fingerprints of every good row (sealed) and how many rows are bad."""
    prints, bad = Fingerprints(), 0
    for item in read_manifest(path):
        if isinstance(item, Row):
            prints.add(item.fingerprint)
        else:
            bad += 1
    return prints.seal(), bad
