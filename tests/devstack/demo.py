"""``make demo``: the whole job on loopback, with no AWS account and no Atlassian site.

Starts a moto server and the Atlassian simulator, creates the bucket, the secret and an Assets object,
puts a file with a non-ASCII name into S3, attaches it, and shows what landed. Exits non-zero if the
attachment is missing or its bytes differ.
"""

from __future__ import annotations

import hashlib
import sys

from assets_attach.runtime import get_runtime
from devstack.stack import local_stack

SAMPLE_KEY = "attachments/1234/Prüfbericht 2026 – 検査 ✓.pdf"


def sample_pdf() -> bytes:
    lines = [f"line {n}: the quick brown fox jumps over the lazy dog".encode() for n in range(20000)]
    return b"%PDF-1.7\n" + b"\n".join(lines) + b"\n%%EOF\n"


def main() -> int:
    with local_stack({"1234": "HW-42"}) as stack:
        print(f"moto server       {stack.moto_url}")
        print(f"Atlassian sim     {stack.sim.base_url}  (workspace {stack.sim.workspace_id})")
        data = sample_pdf()
        stack.client("s3").put_object(Bucket=stack.bucket, Key=SAMPLE_KEY, Body=data, ContentType="application/pdf")
        print(f"put               s3://{stack.bucket}/{SAMPLE_KEY} ({len(data):,} bytes)")

        runtime = get_runtime()
        result = runtime.attacher.attach("1234", runtime.s3.head(stack.bucket, SAMPLE_KEY), comment="make demo")
        print(f"attached          media {result.media_id} → attachment {result.attachment_id}")

        landed = [a for a in stack.sim.attachments("1234") if str(a.id) == result.attachment_id]
        if not landed:
            print("FAILED: no attachment landed on object 1234", file=sys.stderr)
            return 1
        attachment = landed[0]
        matches = attachment.sha256 == hashlib.sha256(data).hexdigest() and attachment.size == len(data)
        print("\nWhat landed in Assets")
        print("  object          1234 (HW-42)")
        print(f"  file name       {attachment.filename}")
        print(f"  size            {attachment.size:,} bytes")
        print(f"  content type    {attachment.mime_type}")
        print(f"  comment         {attachment.comment}")
        print(f"  sha256          {attachment.sha256} ({'matches' if matches else 'DIFFERS from'} the S3 object)")
        return 0 if matches and attachment.filename == SAMPLE_KEY.rsplit("/", 1)[-1] else 1


if __name__ == "__main__":
    sys.exit(main())
