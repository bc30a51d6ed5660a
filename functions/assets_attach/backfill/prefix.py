"""``backfill --prefix s3://bucket/prefix/``: the objects under a prefix as manifest rows, by the S3 drop convention.

``--object-from metadata`` reads each object's metadata (``assets-object-id`` / ``assets-object-key``, else the
key ``<prefix><object>/<file>``, with ``assets-filename`` and ``assets-comment``): one HeadObject per object.
``--object-from key`` takes the object from the key alone, without a HeadObject. The rows are written as a JSON
Lines manifest, so that the run, its state file and a resume are those of any manifest.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from ..aws.s3_source import S3Source
from ..core.s3_drop import named_file, object_targets
from ..errors import BadRequestError

ObjectFrom = Literal["metadata", "key"]


def split_prefix(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix/`` → ``("bucket", "some/prefix/")``; the prefix may be empty."""
    bucket, _, prefix = uri.removeprefix("s3://").partition("/") if uri.startswith("s3://") else ("", "", "")
    if not bucket:
        raise BadRequestError("must look like s3://bucket/prefix/", field="--prefix")
    return bucket, prefix


def default_manifest(uri: str) -> Path:
    bucket, prefix = split_prefix(uri)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", prefix).strip("_") or "all"
    return Path(f"{bucket}-{slug}.jsonl")


def write_prefix_manifest(
    s3_client: Any,
    uri: str,
    object_from: ObjectFrom,
    workspace_id: Callable[[], str],
    out: Path,
    on_skip: Callable[[str, str], None],
) -> int:
    """Walk the prefix and write one row per (object in S3, Assets object); returns the rows written."""
    bucket, prefix = split_prefix(uri)
    source = S3Source(s3_client)
    rows = 0
    with out.open("w", encoding="utf-8") as handle:
        for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for listed in page.get("Contents", []):
                key = str(listed["Key"])
                if key.endswith("/"):
                    continue
                metadata = source.head(bucket, key).metadata if object_from == "metadata" else {}
                try:
                    targets = object_targets(key, metadata, prefix, workspace_id)
                except BadRequestError as e:
                    on_skip(f"s3://{bucket}/{key}", f"metadata {e.field}: {e.message}")
                    continue
                if targets is None:
                    on_skip(f"s3://{bucket}/{key}", f"names no Assets object (use {prefix}<objectId or objectKey>/"
                            "<file> or the metadata assets-object-id / assets-object-key)")  # fmt: skip
                    continue
                filename, comment = named_file(metadata)
                extra = {"filename": filename or None, "comment": comment or None}
                ids, keys = targets
                for name, value in [("objectId", i) for i in ids] + [("objectKey", k) for k in keys]:
                    row = {"source": f"s3://{bucket}/{key}", name: value, **extra}
                    handle.write(json.dumps({k: v for k, v in row.items() if v}, ensure_ascii=False) + "\n")
                    rows += 1
    return rows
