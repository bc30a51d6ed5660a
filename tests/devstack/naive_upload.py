"""The common approach the benchmark compares against: download to a temp file, then ``requests.post(files=...)``.

Usage: ``python -m devstack.naive_upload s3://bucket/key OBJECT_ID`` with the engine's settings in the
environment. It uses the engine's Assets client for steps 1 and 3 so that only step 2 differs.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import boto3
import requests
from boto3.s3.transfer import TransferConfig

from assets_attach.runtime import get_runtime
from assets_attach.sources import parse_s3_uri


def main() -> int:
    uri, object_id = sys.argv[1:3]
    bucket, key = parse_s3_uri(uri)
    runtime = get_runtime()
    name = key.rsplit("/", 1)[-1]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        # One plain GET: s3transfer's parallel ranged GETs would make moto copy the whole object per range.
        boto3.client("s3").download_file(
            bucket, key, str(path), Config=TransferConfig(use_threads=False, multipart_threshold=2**40)
        )
        creds = runtime.assets.media_credentials(object_id)
        with path.open("rb") as f:
            reply = requests.post(
                f"{creds.media_base_url}/file",
                params={"name": name},
                headers={"Authorization": f"Bearer {creds.token.get_secret_value()}", "X-Client-Id": creds.client_id},
                files={"file": (name, f, "application/octet-stream")},
                timeout=600,
            )
        reply.raise_for_status()
        media_id = reply.json()["data"]["id"]
        size = os.path.getsize(path)  # noqa: PTH202
    attachment = runtime.assets.link(
        object_id, filename=name, content_type="application/octet-stream", media_id=media_id, size=size, comment=""
    )
    print(json.dumps({"mediaId": media_id, "attachmentId": attachment.id}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
