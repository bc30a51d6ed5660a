"""The backfill's figures: ``python -m devstack.backfill_bench`` (``make bench`` with ``BENCH_SECTIONS=backfill``).

1. Through the local stack (moto, the simulator, the real webhook behind the local API front, two workers as
   ``WorkerMaxConcurrency`` has it): ``BACKFILL_FILES`` files (default 1,000) of ``BACKFILL_FILE_KIB`` KiB (64) to
   ``BACKFILL_OBJECTS`` objects (100). The command is killed (SIGKILL) once half the jobs are recorded, then run
   again to the end, then once more. Figures: files per minute (start to the last job's end, the kill included),
   Atlassian calls per file, pairs lost and duplicated, webhook requests beyond one per job (a group in flight
   at the kill is sent again and answered with the same job), and requests sent by the third run.
2. Peak RSS of the command (VmHWM, ``devstack.peak_rss``) for each manifest size in ``BACKFILL_RSS_ROWS``
   (default ``1000,100000``), against a stub API that accepts every job and answers it attached at once, so
   that only the command's own memory is measured.

A measurement: it prints the goals met or missed and exits 0 either way.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from assets_attach.backfill.grouping import group_rows
from assets_attach.backfill.manifest import Row, read_manifest
from devstack import peak_rss
from devstack.demo import QUIET
from devstack.lambda_local import LocalApi
from devstack.stack import child_env, local_stack, patched_environ

MiB = 2**20


def backfill_command(manifest: Path, env: dict[str, str], *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "assets_attach", "backfill", str(manifest), "--rate", "20", *extra],
        env=child_env(env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def requests_sent(stderr: bytes) -> int:
    found = re.search(rb"([\d,]+) requests sent in this run", stderr)
    return int(found.group(1).replace(b",", b"")) if found else -1


def stack_section(files: int, objects: int, file_kib: int) -> list[str]:
    from assets_attach.observability import logger

    logger.setLevel("ERROR")  # the webhook and the workers run in this process
    object_ids = [str(5000 + i) for i in range(objects)]
    with local_stack(dict.fromkeys(object_ids)) as stack, LocalApi() as api, tempfile.TemporaryDirectory() as tmp:
        print(f"backfill: {files:,} files of {file_kib} KiB to {objects} objects through the local stack ...")
        data = os.urandom(file_kib * 1024)
        lines = []
        s3 = stack.client("s3")
        for i in range(files):
            key = f"backlog/{object_ids[i % objects]}/file-{i:06d}.bin"
            s3.put_object(Bucket=stack.bucket, Key=key, Body=data)
            lines.append(f"s3://{stack.bucket}/{key},{object_ids[i % objects]}")
        manifest = Path(tmp) / "library.csv"
        manifest.write_text("source,objectId\n" + "\n".join(lines) + "\n")
        state = Path(tmp) / "library.csv.state.jsonl"
        env = {"ASSETS_ATTACH_API_URL": api.url, "ASSETS_ATTACH_TOKEN": stack.webhook_token}
        groups = sum(1 for _ in group_rows(r for r in read_manifest(manifest) if isinstance(r, Row)))
        workers = [stack.worker().start() for _ in range(2)]
        calls_before = len(stack.sim.requests)
        started = time.monotonic()
        first = backfill_command(manifest, env)
        while not state.exists() or state.read_text().count('"sent"') < groups // 2:
            if first.poll() is not None:
                raise SystemExit(f"the backfill ended before the kill: {first.stderr.read() if first.stderr else ''!r}")
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait()
        killed_with = state.read_text().count('"sent"')
        second = backfill_command(manifest, env)
        _, second_err = second.communicate()
        seconds = time.monotonic() - started
        third = backfill_command(manifest, env)
        _, third_err = third.communicate()
        for worker in workers:
            worker.stop()
        calls = len(stack.sim.requests) - calls_before
        made = Counter((o, a.filename) for o in object_ids for a in stack.sim.attachments(o))
        wanted = {(line.split(",")[1], line.split(",")[0].rsplit("/", 1)[1]) for line in lines}
        jobs = {json.loads(t)["sent"] for t in state.read_text().splitlines() if '"sent"' in t}
        posted = sum(b'"statusUrl"' in answer for answer in api.answers)
    lost, duplicated = len(wanted - set(made)), sum(n - 1 for n in made.values())
    return [
        f"| backfill, {files:,} files of {file_kib} KiB to {objects} objects | {files / seconds * 60:,.0f} files/min | "
        f"{calls / files:.2f} Atlassian calls/file | lost {lost} | duplicated {duplicated} |",
        f"killed after {killed_with} of {len(jobs)} jobs recorded; the re-run exited {second.returncode} "
        f"({requests_sent(second_err)} requests); webhook requests beyond one per job: {posted - len(jobs)} "
        f"(goal at most 1: {'met' if posted - len(jobs) <= 1 else 'MISSED'}); the third run sent "
        f"{requests_sent(third_err)} (goal 0: {'met' if requests_sent(third_err) == 0 else 'MISSED'}); "
        f"lost {lost}, duplicated {duplicated} (goal 0 and 0: {'met' if lost == duplicated == 0 else 'MISSED'})",
    ]


class _StubHandler(BaseHTTPRequestHandler):
    """POST /attachments → 202; GET a job → succeeded, every file attached (one object per job)."""

    server: _StubServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.lock:
            job_id = f"{len(self.server.jobs):032x}"
            self.server.jobs[job_id] = [f["s3Uri"] for f in body.get("files", [])]
        self._answer(202, {"jobId": job_id, "status": "queued", "statusUrl": f"/attachments/jobs/{job_id}"})

    def do_GET(self) -> None:
        job_id = self.path.rsplit("/", 1)[1]
        files = []
        for i, uri in enumerate(self.server.jobs[job_id]):
            bucket, _, key = uri.removeprefix("s3://").partition("/")
            files.append({"objectId": "1", "bucket": bucket, "key": key, "filename": key, "size": 1,
                          "status": "attached", "attachmentId": f"{job_id}-{i}"})  # fmt: skip
        self._answer(200, {"jobId": job_id, "status": "succeeded", "objectId": "1", "files": files,
                           "attempts": 1, "createdAt": "t", "updatedAt": "t"})  # fmt: skip


class _StubServer(ThreadingHTTPServer):
    daemon_threads = True
    lock = threading.Lock()
    jobs: dict[str, list[str]]


@contextmanager
def stub_api() -> Iterator[str]:
    server = _StubServer(("127.0.0.1", 0), _StubHandler)
    server.jobs = {}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def rss_section(sizes: list[int]) -> list[str]:
    peaks = {}
    with stub_api() as url, tempfile.TemporaryDirectory() as tmp:
        for rows in sizes:
            print(f"backfill peak RSS: {rows:,} manifest rows against a stub API ...", flush=True)
            manifest = Path(tmp) / f"m{rows}.csv"
            with manifest.open("w") as out:  # sorted by object, 20 rows each, as a manifest is best written
                out.write("source,objectId,comment\n")
                for i in range(rows):
                    out.write(f"s3://bucket/backlog/{i // 20}/file-{i:07d}.pdf,{1 + i // 20},row {i}\n")
            env = {"ASSETS_ATTACH_API_URL": url, "ASSETS_ATTACH_TOKEN": "stub"}
            with patched_environ(env):
                _, peaks[rows] = peak_rss.run_measured(
                    "assets_attach", "backfill", str(manifest), "--rate", "1000", "--in-flight", "50", timeout=3600
                )
    smallest, largest = min(sizes), max(sizes)
    growth = (peaks[largest] - peaks[smallest]) / MiB
    return [
        "peak RSS of the command: "
        + ", ".join(f"{rows:,} rows {peak / MiB:.1f} MiB" for rows, peak in sorted(peaks.items()))
        + f"; growth {growth:+.1f} MiB (8 bytes per row are held: {(largest - smallest) * 8 / MiB:.1f} MiB)"
    ]


def main_report() -> list[str]:
    files = int(os.environ.get("BACKFILL_FILES", "1000"))
    objects = int(os.environ.get("BACKFILL_OBJECTS", "100"))
    file_kib = int(os.environ.get("BACKFILL_FILE_KIB", "64"))
    sizes = [int(n) for n in os.environ.get("BACKFILL_RSS_ROWS", "1000,100000").split(",")]
    with patched_environ(QUIET):
        return [*stack_section(files, objects, file_kib), *rss_section(sizes)]


def main() -> int:
    started = time.monotonic()
    report = main_report()
    minutes = (time.monotonic() - started) / 60
    print(f"\nbackfill results of {datetime.now(UTC):%Y-%m-%d} ({os.cpu_count()} cores, {minutes:.1f} min)")
    print("\n".join(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
