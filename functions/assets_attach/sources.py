"""How a job's files are named and read: an S3 URI, a Jira attachment id, and the size every source is read in.

Rules, below the adapters: the request parser and the backfill manifest check what the adapters then fetch.
"""

from __future__ import annotations

import re

from .errors import BadRequestError

JIRA_ATTACHMENT_ID = re.compile(r"[1-9][0-9]{0,18}")
READ_CHUNK_BYTES = 1024 * 1024  # S3 content, Jira content and a local file are read in chunks of this size


def parse_s3_uri(uri: str, field: str = "s3Uri") -> tuple[str, str]:
    """``s3://bucket/path/file.pdf`` → ``("bucket", "path/file.pdf")``."""
    prefix = "s3://"
    bucket, _, key = uri[len(prefix) :].partition("/") if uri.startswith(prefix) else ("", "", "")
    if not bucket or not key:
        raise BadRequestError("must look like s3://bucket/path/file", field=field)
    return bucket, key
