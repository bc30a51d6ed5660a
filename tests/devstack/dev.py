"""``make dev``: keep the local stack running and print how to call it with curl. Ctrl-C stops it."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading

from devstack.demo import QUIET
from devstack.lambda_local import LocalApi
from devstack.stack import local_stack


def main() -> int:
    os.environ.update(QUIET)
    with local_stack({"1234": "HW-42"}) as stack, LocalApi() as api:
        worker = stack.worker().start()
        stack.client("s3").put_object(Bucket=stack.bucket, Key="incoming/hello.txt", Body=b"hello from make dev\n")
        print(
            f"""The local stack is up (Ctrl-C stops it).

  webhook      {api.url}/attachments
  token        {stack.webhook_token}
  bucket       {stack.bucket}   (S3 at {stack.moto_url}; AWS_ENDPOINT_URL={stack.moto_url})
  Assets       object 1234, key HW-42, in the simulator at {stack.sim.base_url}

Try:
  curl -s -X POST {api.url}/attachments \\
    -H 'Authorization: Bearer {stack.webhook_token}' -H 'Content-Type: application/json' \\
    -d '{{"objectKey": "HW-42", "s3Uri": "s3://{stack.bucket}/incoming/hello.txt"}}'
  curl -s {api.url}/attachments/jobs/<jobId> -H 'Authorization: Bearer {stack.webhook_token}'
""",
            flush=True,
        )
        stopped = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stopped.set())
        with contextlib.suppress(KeyboardInterrupt):
            stopped.wait()
        worker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
