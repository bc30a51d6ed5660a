"""``make bench``: a 1 GiB S3 object into the Atlassian simulator five ways, side by side, and two more figures.

Uploads (medians of ``BENCH_ROUNDS``, default 5, the approaches interleaved round by round):

1. curl uploading a local copy to the media endpoint: the upload limit of this machine;
2. two curls piped: ``curl GET`` from the moto S3 into ``curl POST`` with an exact ``Content-Length`` (the
   multipart framing printed around it): the S3 → media limit, and the yardstick of the ratios;
3. ``assets-attach upload s3://...`` with ``MEDIA_UPLOAD_MODE=single`` (one streamed multipart POST);
4. the same with ``MEDIA_UPLOAD_MODE=chunked`` (5 MiB chunks, three in flight, each hashed and checked);
5. the common approach: download to /tmp, then ``requests.post(files=...)``.

Each figure is wall-clock from process start to exit. CPU is the uploading process's (every process of the
pipe), per GiB; moto runs in this process and the simulator in its own, so neither is counted there. Peak RSS is
the uploading process's VmHWM (the sum over the pipe's processes); for the product it is measured again with a
1 MiB object, and the growth between the two is the memory goal.

Resume: a worker process with ``MEDIA_UPLOAD_MODE=chunked`` is killed (SIGKILL) once 60% of the object's chunks
are accepted; the message is redelivered to a fresh worker process, and the simulator's byte counter tells how
much was sent twice.

Cold start: the two handlers' imports against ``import boto3, requests`` (devstack.cold_import).

Profile (loopback): where the CPU of each style goes (cProfile by thread CPU time, every thread; the top entries),
and the fixed cost of a 1 MiB job apart from its bytes (wall clock: imports, S3 HEAD, the media credentials, the
upload, the link), from ``devstack.cpu_profile``.

WAN: the same uploads through a media host shaped like a long network path (``devstack.bench_wan``).

It is a measurement: it prints the goals met or missed and exits 0 either way. Settings: BENCH_MIB (default 1024),
BENCH_ROUNDS (default 5), BENCH_SECTIONS (default ``upload,profile,resume,wan,imports,backfill``; the backfill's
own settings are in ``devstack.backfill_bench``), BENCH_LINK_MIBPS and BENCH_RTT_MS (the WAN's shaping, default 25
and 40).
"""

from __future__ import annotations

import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from devstack import peak_rss
from devstack.bigfile import GiB, MiB, put_big_object, write_big_file
from devstack.lambda_local import LocalApi
from devstack.stack import AWS_TEST_CREDENTIALS, LocalStack, child_env, moto_server, patched_environ
from devstack.webhook_client import job_status, post

GOAL_SINGLE_VS_PIPE = 0.85
GOAL_CHUNKED_VS_SINGLE = 0.60
GOAL_RSS_GROWTH = {"single": 16 * MiB, "chunked": 32 * MiB}
CONCURRENCY = 3  # MEDIA_UPLOAD_CONCURRENCY's default
CHUNK = 5 * MiB  # the chunk size for files up to 5 GB
KILL_AT = 0.60
OBJECT_ID = "1234"


class SimulatorProcess:
    """The Atlassian simulator in a child process, so that it competes with each client the same way."""

    def __init__(self, *options: str) -> None:
        """``options``: more of the simulator's command line (``--link-mibps 25 --rtt-ms 40``)."""
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "devstack.atlassian_sim", "--port", "0", "--object", f"{OBJECT_ID}:HW-42", *options],
            stdout=subprocess.PIPE,
            text=True,
            env=child_env(),
        )
        assert self.proc.stdout is not None
        info = json.loads(self.proc.stdout.readline())
        # What LocalStack reads of a simulator.
        self.base_url: str = info["baseUrl"]
        self.email: str = info["email"]
        self.api_token: str = info["apiToken"]
        self.workspace_id: str = info["workspaceId"]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.proc.pid)

    def chunk_stats(self) -> dict[str, int]:
        reply = requests.get(f"{self.base_url}/__sim/stats", timeout=10)
        reply.raise_for_status()
        stats: dict[str, int] = reply.json()
        return stats

    def requests_since(self, since: int) -> list[dict[str, Any]]:
        """The requests recorded from the ``since``-th on (method, path, status, started, at)."""
        reply = requests.get(f"{self.base_url}/__sim/requests", params={"since": str(since)}, timeout=30)
        reply.raise_for_status()
        recorded: list[dict[str, Any]] = reply.json()
        return recorded


def process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    """CPU of this process's children that have exited (the uploading processes; not the simulator, still running)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Run:
    seconds: float
    peak_rss: int
    cpu: float  # the uploading process(es)
    cpu_s3: float  # moto, in this process
    cpu_sim: float
    check: str = ""  # the integrity check the product reported


@dataclass
class Approach:
    name: str
    upload: Callable[[int], tuple[int, str]]  # size -> (peak RSS, check made)
    runs: list[Run] = field(default_factory=list)
    small: list[Run] = field(default_factory=list)  # 1 MiB runs, for the memory growth

    def median(self, attribute: str, runs: list[Run] | None = None) -> float:
        return statistics.median(getattr(r, attribute) for r in (self.runs if runs is None else runs))

    def mib_per_s(self, size: int) -> float:
        return size / MiB / self.median("seconds")


def measured(sim: SimulatorProcess, upload: Callable[[int], tuple[int, str]], size: int) -> Run:
    """Time ``upload(size)`` (which returns the peak RSS and the check made), with the CPU each party spent."""
    cpu, s3, sim_cpu = children_cpu_seconds(), own_cpu_seconds(), sim.cpu_seconds()
    started = time.perf_counter()
    peak, check = upload(size)
    seconds = time.perf_counter() - started
    return Run(
        seconds,
        peak,
        children_cpu_seconds() - cpu,
        own_cpu_seconds() - s3,
        sim.cpu_seconds() - sim_cpu,
        check,
    )


# ----------------------------------------------------------------------------------------- the approaches


def tree_hwm(root: int, stop: threading.Event, peaks: dict[int, int]) -> None:
    """Poll the VmHWM of ``root`` and its descendants (curl cannot report its own) until ``stop``."""
    while not stop.is_set():
        pending = [root]
        while pending:
            pid = pending.pop()
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peaks[pid] = max(peaks.get(pid, 0), int(line.split()[1]) * 1024)
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            pending.extend(int(c) for c in children)
        time.sleep(0.01)


def run_command(command: list[str], env: dict[str, str] | None = None) -> int:
    """Run a non-Python command to its end; the sum of its processes' peak RSS."""
    child = subprocess.Popen(command, env=env)
    peaks: dict[int, int] = {}
    stop = threading.Event()
    watcher = threading.Thread(target=tree_hwm, args=(child.pid, stop, peaks), daemon=True)
    watcher.start()
    code = child.wait()
    stop.set()
    watcher.join()
    if code != 0:
        raise SystemExit(f"{command[0]} failed with exit code {code}")
    # The shell of the pipe counts too; it is small. A process that ended between two polls is missed.
    return sum(peaks.values())


def media_credentials(sim: SimulatorProcess) -> dict[str, str]:
    reply = requests.get(
        f"{sim.base_url}/jsm/assets/workspace/{sim.workspace_id}/v1/attachments/object/{OBJECT_ID}/credentials",
        auth=(sim.email, sim.api_token),
        timeout=30,
    )
    reply.raise_for_status()
    creds: dict[str, str] = reply.json()
    return creds


def curl_headers(creds: dict[str, str]) -> list[str]:
    return ["-H", f"Authorization: Bearer {creds['mediaJwtToken']}", "-H", f"X-Client-Id: {creds['clientId']}"]


def curl_upload(sim: SimulatorProcess, path: Path) -> tuple[int, str]:
    creds = media_credentials(sim)
    command = [
        "curl", "-sS", "--fail", "-o", "/dev/null", *curl_headers(creds),
        "-F", f"file=@{path};type=application/zip",
        f"{creds['mediaBaseUrl']}/file?name={quote(path.name, safe='')}",
    ]  # fmt: skip
    return run_command(command), ""


PIPE = 'set -e; { printf "%s" "$HEAD"; curl -sS --fail "$GET_URL"; printf "%s" "$TAIL"; } | curl "$@"'


def curl_pipe(sim: SimulatorProcess, s3: Any, bucket: str, key: str, size: int) -> tuple[int, str]:
    """curl GET (a presigned URL of the moto S3) | curl POST: the bytes never touch a disk or a Python process."""
    creds = media_credentials(sim)
    boundary = "bench-boundary-7f3a"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.zip"\r\n'
        "Content-Type: application/zip\r\n\r\n"
    )
    tail = f"\r\n--{boundary}--\r\n"
    get_url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=3600)
    post_args = [
        "-sS", "--fail", "-o", "/dev/null", "-X", "POST", "-T", "-", *curl_headers(creds),
        "-H", f"Content-Type: multipart/form-data; boundary={boundary}",
        "-H", f"Content-Length: {len(head) + size + len(tail)}",
        "-H", "Transfer-Encoding:", "-H", "Expect:",  # an exact length, not chunked, no 100-continue round trip
        f"{creds['mediaBaseUrl']}/file?name=big.zip",
    ]  # fmt: skip
    env = {**os.environ, "HEAD": head, "TAIL": tail, "GET_URL": get_url}
    return run_command(["sh", "-c", PIPE, "pipe", *post_args], env), ""


def product_upload(uri: str, mode: str, concurrency: int = CONCURRENCY) -> tuple[int, str]:
    with patched_environ({"MEDIA_UPLOAD_MODE": mode, "MEDIA_UPLOAD_CONCURRENCY": str(concurrency)}):
        done, peak = peak_rss.run_measured("assets_attach", "upload", uri, "--object-id", OBJECT_ID, timeout=1800)
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    return peak, str(summary.get("check", ""))


def naive_upload(uri: str) -> tuple[int, str]:
    _, peak = peak_rss.run_measured("devstack.naive_upload", uri, OBJECT_ID, timeout=1800)
    return peak, ""


# ----------------------------------------------------------------------------------------- the sections


def worker_timeout(size: int) -> float:
    """The resume's worker invocations: the worker starts a file only with 20 s + 10 MiB/s of it in hand."""
    return 30 + size / (10 * MiB)


@contextmanager
def bench_stack(size: int, *sim_options: str) -> Iterator[tuple[LocalStack, SimulatorProcess]]:
    """moto in this process, the simulator in its own, seeded as template.yaml would be, environment pointed at it.
    As there, a received message stays invisible for longer than a worker invocation may last."""
    sim = SimulatorProcess(*sim_options)
    try:
        with moto_server() as moto_url, patched_environ({**AWS_TEST_CREDENTIALS, "AWS_ENDPOINT_URL": moto_url}):
            visibility = int(worker_timeout(size)) + 5
            try:
                stack = LocalStack(moto_url, sim, visibility_timeout=visibility).seed()  # type: ignore[arg-type]
                with patched_environ({**stack.env(), "POWERTOOLS_LOG_LEVEL": "WARNING"}):  # the webhook runs in here
                    yield stack, sim
            finally:  # moto's state outlives its server in this process: the next stack starts empty
                requests.post(f"{moto_url}/moto-api/reset", timeout=30)
    finally:
        sim.stop()


def upload_section(stack: LocalStack, sim: SimulatorProcess, size: int, rounds: int) -> list[str]:
    s3 = stack.client("s3")
    print(f"preparing a {size // MiB} MiB S3 object, a 1 MiB one and a local copy ...", flush=True)
    put_big_object(s3, stack.bucket, "bench/big.zip", size)
    put_big_object(s3, stack.bucket, "bench/small.zip", MiB)
    big, small = f"s3://{stack.bucket}/bench/big.zip", f"s3://{stack.bucket}/bench/small.zip"
    with tempfile.TemporaryDirectory() as tmp, patched_environ({"MAX_FILE_SIZE_BYTES": str(size)}):
        local = Path(tmp) / "big.zip"
        write_big_file(local, size)

        def s3_object(n: int) -> str:
            return big if n == size else small

        approaches = [
            Approach("curl -F from a local file (the upload limit)", lambda n: curl_upload(sim, local)),
            Approach("curl GET S3 \\| curl POST (the S3 → media limit)",
                     lambda n: curl_pipe(sim, s3, stack.bucket, "bench/big.zip", n)),
            Approach("assets-attach, single mode", lambda n: product_upload(s3_object(n), "single")),
            Approach("assets-attach, chunked mode", lambda n: product_upload(s3_object(n), "chunked")),
            Approach("download to /tmp, then requests.post(files=)", lambda n: naive_upload(big)),
        ]  # fmt: skip
        for round_number in range(1, rounds + 1):
            for approach in approaches:
                approach.runs.append(measured(sim, approach.upload, size))
                print(f"  round {round_number}: {approach.name}: {approach.runs[-1].seconds:.2f} s", flush=True)
            for approach in approaches[2:4]:
                approach.small.append(measured(sim, approach.upload, MiB))
    return upload_report(approaches, size)


def upload_report(approaches: list[Approach], size: int) -> list[str]:
    pipe, single, chunked = approaches[1], approaches[2], approaches[3]
    gib = size / GiB
    lines = [
        "| approach | MiB/s | × pipe | peak RSS (MiB) | CPU s/GiB: uploader | moto | simulator |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for a in approaches:
        lines.append(
            f"| {a.name} | {a.mib_per_s(size):,.0f} | {a.mib_per_s(size) / pipe.mib_per_s(size):.2f} | "
            f"{a.median('peak_rss') / MiB:,.0f} | {a.median('cpu') / gib:.2f} | {a.median('cpu_s3') / gib:.2f} | "
            f"{a.median('cpu_sim') / gib:.2f} |"
        )
    lines.append("")
    checks = sorted({r.check for a in (single, chunked) for r in a.runs})
    lines.append(f"integrity check the product made: {', '.join(checks)}")
    single_ratio = single.mib_per_s(size) / pipe.mib_per_s(size)
    chunked_ratio = chunked.mib_per_s(size) / single.mib_per_s(size)
    lines.append(verdict("single mode vs the two-curl pipe", single_ratio, GOAL_SINGLE_VS_PIPE, "×"))
    lines.append(verdict("chunked mode vs single mode", chunked_ratio, GOAL_CHUNKED_VS_SINGLE, "×"))
    for mode, a in (("single", single), ("chunked", chunked)):
        growth = a.median("peak_rss") - a.median("peak_rss", a.small)
        goal = GOAL_RSS_GROWTH[mode]
        lines.append(
            f"peak RSS growth 1 MiB → {size // MiB} MiB, {mode} mode: {growth / MiB:+.1f} MiB "
            f"({a.median('peak_rss', a.small) / MiB:.1f} → {a.median('peak_rss') / MiB:.1f}; "
            f"goal at most {goal // MiB} MiB: {'met' if growth <= goal else 'MISSED'})"
        )
    return lines


def verdict(what: str, value: float, goal: float, unit: str) -> str:
    return f"{what}: {value:.2f}{unit} (goal at least {goal:.2f}{unit}: {'met' if value >= goal else 'MISSED'})"


def worker_process(timeout: float) -> subprocess.Popen[bytes]:
    env = child_env({"MEDIA_UPLOAD_MODE": "chunked", "WORKER_TIMEOUT": str(timeout)})
    return subprocess.Popen(
        [sys.executable, "-m", "reliability.worker_process"],
        env=env,
        stdout=Path(os.environ.get("BENCH_WORKER_LOG", os.devnull)).open("ab"),
        stderr=subprocess.STDOUT,
    )


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    process.send_signal(sig)
    process.wait(timeout=30)


def resume_section(stack: LocalStack, sim: SimulatorProcess, size: int) -> list[str]:
    """Kill a chunked upload at 60%, redeliver, and count the bytes the simulator received twice."""
    print(f"resume: a worker killed at {KILL_AT:.0%} of a {size // MiB} MiB chunked upload ...", flush=True)
    put_big_object(stack.client("s3"), stack.bucket, "bench/resume.zip", size)
    timeout = worker_timeout(size)
    before = sim.chunk_stats()
    with LocalApi() as api, patched_environ({"MAX_FILE_SIZE_BYTES": str(size)}):
        reply = post(api.url, stack, {"objectId": OBJECT_ID, "s3Uri": f"s3://{stack.bucket}/bench/resume.zip"})
        if reply.status_code != 202:
            raise SystemExit(f"the webhook answered {reply.status_code}: {reply.text}")
        status_url = str(reply.json()["statusUrl"])
        first = worker_process(timeout)
        killed_at = time.monotonic()
        try:
            while sim.chunk_stats()["chunkBytesAccepted"] - before["chunkBytesAccepted"] < KILL_AT * size:
                if first.poll() is not None:
                    raise SystemExit("the worker ended before it was killed")
                time.sleep(0.02)
        finally:
            stop(first, signal.SIGKILL)
            killed_at = time.monotonic()
        at_kill = sim.chunk_stats()
        appended = job_status(stack, status_url)["files"][0].get("bytesSent", 0)
        # As in Lambda, the message returns after its visibility timeout, when the killed invocation's in-progress
        # idempotency record (which lasts as long as the invocation might have) has expired.
        print(f"  killed with {appended / MiB:.0f} MiB appended; redelivery after the queue's "
              f"{timeout + 5:.0f} s visibility timeout ...", flush=True)  # fmt: skip
        second = worker_process(timeout)
        try:
            deadline = killed_at + 2 * timeout + 600
            while (job := job_status(stack, status_url))["status"] not in ("succeeded", "failed"):
                if time.monotonic() > deadline:
                    raise SystemExit(f"the resumed job did not finish: {job}")
                time.sleep(0.5)
        finally:
            stop(second)
    after = sim.chunk_stats()
    received = after["chunkBytesReceived"] - before["chunkBytesReceived"]
    resent = received - size
    return [
        f"resume: killed at {(at_kill['chunkBytesAccepted'] - before['chunkBytesAccepted']) / size:.0%} "
        f"({appended / MiB:.0f} MiB appended); the resumed job {job['status']}; the simulator received "
        f"{received / MiB:,.0f} MiB for a {size / MiB:,.0f} MiB file: {resent / MiB:.0f} MiB sent twice = "
        f"{resent / CHUNK:.1f} chunks (goal at most MEDIA_UPLOAD_CONCURRENCY = {CONCURRENCY}: "
        f"{'met' if resent <= CONCURRENCY * CHUNK and job['status'] == 'succeeded' else 'MISSED'})"
    ]


def profiled(clock: str, uri: str, mode: str, out: Path) -> None:
    """``assets-attach upload`` in ``mode`` under ``devstack.cpu_profile``, its stats written to ``out``."""
    with patched_environ({"MEDIA_UPLOAD_MODE": mode}):
        done = subprocess.run(
            [sys.executable, "-m", "devstack.cpu_profile", clock, str(out), "assets_attach", "upload", uri,
             "--object-id", OBJECT_ID],
            capture_output=True, text=True, env=child_env(), timeout=1800, check=False,
        )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"the profiled upload failed:\n{done.stderr}")


# The fixed cost of a job, as the functions that pay it (file suffix, function): each one's time, callees included.
FIXED_COSTS = (
    ("imports", "<frozen importlib._bootstrap>", "_find_and_load"),
    ("S3 HEAD", "s3_source.py", "head_accepted"),
    ("S3 HEAD", "s3_source.py", "head"),
    ("credentials", "assets_client.py", "media_credentials"),
    ("upload", "attach.py", "_send_whole"),
    ("link", "assets_client.py", "link"),
)


def profile_section(stack: LocalStack, size: int) -> list[str]:
    """Two lines of where the CPU goes (one per style), and the fixed cost of a 1 MiB job."""
    from devstack import cpu_profile

    print("profile: one upload per style under cProfile, and a 1 MiB job ...", flush=True)
    big, small = f"s3://{stack.bucket}/bench/big.zip", f"s3://{stack.bucket}/bench/small.zip"
    s3 = stack.client("s3")
    put_big_object(s3, stack.bucket, "bench/big.zip", size)
    put_big_object(s3, stack.bucket, "bench/small.zip", MiB)
    lines = []
    with tempfile.TemporaryDirectory() as tmp, patched_environ({"MAX_FILE_SIZE_BYTES": str(size)}):
        for mode in ("single", "chunked"):
            out = Path(tmp) / f"{mode}.pstats"
            profiled("cpu", big, mode, out)
            top = ", ".join(f"{name} {share:.0%}" for name, share in cpu_profile.top(out, 5))
            lines.append(f"CPU of a {size // MiB} MiB upload, {mode} mode, by function (own time): {top}")
        out = Path(tmp) / "small.pstats"
        started = time.perf_counter()
        profiled("wall", small, "single", out)
        whole = time.perf_counter() - started
        costs: dict[str, float] = {}
        for name, file_suffix, function in FIXED_COSTS:
            costs[name] = costs.get(name, 0.0) or cpu_profile.cumulative(out, file_suffix, function)
    parts = ", ".join(f"{name} {seconds * 1000:.0f} ms" for name, seconds in costs.items())
    lines.append(
        f"fixed cost of a job: a 1 MiB upload takes {whole:.2f} s, whole process (profiled); of it {parts} (a step "
        "that imports on first use counts those imports in both)"
    )
    return lines


LAMBDA_ROUNDS = 9
BUILT_WEBHOOK = Path(".aws-sam/build/WebhookFunction")


def imports_section(rounds: int) -> list[str]:
    """The handlers' imports against ``import boto3, requests``: from the source tree, and as Lambda runs them from
    ``make build``'s output (read-only, dated 1980-01-01, no bytecode written; median of 9) where there is one."""
    from devstack.cold_import import lambda_task, markdown_table, measure, split_lines

    print("cold start: handler imports against `import boto3, requests` ...", flush=True)
    lines = ["from the source tree:", "", *markdown_table(measure(rounds)).splitlines()]
    found = subprocess.run(["sh", "tests/packaging/find-python3.13"], capture_output=True, text=True, check=False)
    if not BUILT_WEBHOOK.is_dir() or found.returncode != 0:
        return [*lines, "", "as Lambda runs it: no build output (run `make build` first, with Python 3.13)"]
    print(f"cold start as Lambda runs it: a read-only copy of {BUILT_WEBHOOK}, median of {LAMBDA_ROUNDS} ...")
    with lambda_task(BUILT_WEBHOOK, found.stdout.strip()) as where:
        table = markdown_table(measure(LAMBDA_ROUNDS, where)).splitlines()
        split = split_lines(where)
    heading = f"as Lambda runs it ({BUILT_WEBHOOK}, read-only, files dated 1980-01-01, no bytecode written):"
    return [*lines, "", heading, "", *table, "", *split]


def main() -> int:
    size = int(os.environ.get("BENCH_MIB", "1024")) * MiB
    rounds = int(os.environ.get("BENCH_ROUNDS", "5"))
    sections = os.environ.get("BENCH_SECTIONS", "upload,profile,resume,wan,imports,backfill").split(",")
    started = time.monotonic()
    print(f"benchmark: {size // MiB} MiB, {rounds} rounds, {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    report: list[str] = []
    if {"upload", "profile", "resume"} & set(sections):
        with bench_stack(size) as (stack, sim):
            if "upload" in sections:
                report += ["", *upload_section(stack, sim, size, rounds)]
            if "profile" in sections:
                report += ["", *profile_section(stack, size)]
            if "resume" in sections:
                report += ["", *resume_section(stack, sim, size)]
    if "wan" in sections:
        from devstack.bench_wan import wan_section

        report += ["", *wan_section(size, rounds)]
    if "imports" in sections:
        report += ["", *imports_section(rounds)]
    if "backfill" in sections:  # BACKFILL_* settings: see devstack.backfill_bench
        from devstack import backfill_bench

        report += ["", *backfill_bench.main_report()]
    minutes = (time.monotonic() - started) / 60
    print(f"\nresults of {datetime.now(UTC):%Y-%m-%d} ({size // MiB} MiB, medians of {rounds}, {minutes:.1f} min)")
    print("\n".join(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
