"""``make bench``: a 1 GiB S3 object into the simulator three ways, side by side, in one run.

1. ``assets-attach upload s3://...`` (this product: S3 streamed straight into the media upload);
   and the same command from a local file, which separates the engine's cost from the S3 server's;
2. curl uploading the same bytes from a local file to the same media endpoint (the baseline);
3. the common approach: download to /tmp, then ``requests.post(files=...)``.

The simulator runs in its own process so that it competes with each client the same way; moto runs in
this one, so its CPU time is this process's. Every figure is wall-clock from process start to exit. The
target: the product reaches at least 70% of curl's MiB/s. It is a measurement, so it exits 0 either way.
Size: BENCH_SIZE_MIB (default 1024).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import requests

from devstack import peak_rss
from devstack.bigfile import MiB, put_big_object, write_big_file
from devstack.stack import AWS_TEST_CREDENTIALS, LocalStack, child_env, moto_server, patched_environ

TARGET_RATIO = 0.70


@dataclass
class Run:
    name: str
    seconds: float
    size: int
    peak_rss: int | None
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def mib_per_s(self) -> float:
        return self.size / MiB / self.seconds


class SimulatorProcess:
    """The Atlassian simulator in a child process; ``info`` is the JSON line it prints on start."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "devstack.atlassian_sim", "--port", "0", "--object", "1234:HW-42"],
            stdout=subprocess.PIPE,
            text=True,
            env=child_env(),
        )
        assert self.proc.stdout is not None
        self.info = json.loads(self.proc.stdout.readline())

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_meter(sim: SimulatorProcess) -> dict[str, float]:
    """CPU seconds so far of the client (children of this process), S3 (moto, in this process) and the simulator."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "client": children.ru_utime + children.ru_stime,
        "s3": own.ru_utime + own.ru_stime,
        "sim": sim.cpu_seconds(),
    }


def measured(sim: SimulatorProcess, run: Callable[[], Run]) -> Run:
    before = cpu_meter(sim)
    result = run()
    after = cpu_meter(sim)
    result.cpu = {k: after[k] - before[k] for k in before}
    return result


def timed_python(name: str, size: int, module: str, *args: str) -> Run:
    started = time.perf_counter()
    _, peak = peak_rss.run_measured(module, *args, timeout=1800)
    return Run(name, time.perf_counter() - started, size, peak)


def watch_hwm(pid: int, result: list[int]) -> None:
    """Poll a non-Python child's VmHWM until it exits (curl cannot report its own)."""
    status = Path(f"/proc/{pid}/status")
    while True:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    result[0] = int(line.split()[1]) * 1024
        except (FileNotFoundError, ProcessLookupError):
            return
        time.sleep(0.02)


def timed_curl(sim: dict[str, str], path: Path, size: int) -> Run:
    session = requests.Session()
    creds = session.get(
        f"{sim['baseUrl']}/jsm/assets/workspace/{sim['workspaceId']}/v1/attachments/object/1234/credentials",
        auth=(sim["email"], sim["apiToken"]),
        timeout=30,
    ).json()
    command = [
        "curl", "-sS", "--fail", "-o", "/dev/null",
        "-H", f"Authorization: Bearer {creds['mediaJwtToken']}",
        "-H", f"X-Client-Id: {creds['clientId']}",
        "-F", f"file=@{path};type=application/zip",
        f"{creds['mediaBaseUrl']}/file?name={quote(path.name, safe='')}",
    ]  # fmt: skip
    started = time.perf_counter()
    child = subprocess.Popen(command)
    hwm = [0]
    watcher = threading.Thread(target=watch_hwm, args=(child.pid, hwm), daemon=True)
    watcher.start()
    if child.wait() != 0:
        raise SystemExit("curl failed")
    seconds = time.perf_counter() - started
    watcher.join()
    return Run("curl -F from a local file (baseline)", seconds, size, hwm[0] or None)


def main() -> int:
    size = int(os.environ.get("BENCH_SIZE_MIB", "1024")) * MiB
    print(f"benchmark: {size // MiB} MiB, {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    sim = SimulatorProcess()
    try:
        with (
            moto_server() as moto_url,
            patched_environ({**AWS_TEST_CREDENTIALS, "AWS_ENDPOINT_URL": moto_url}),
            tempfile.TemporaryDirectory() as tmp,
        ):
            stack = LocalStack(moto_url, sim=None)  # type: ignore[arg-type]
            s3 = stack.client("s3")
            s3.create_bucket(Bucket=stack.bucket)
            secret = {
                "email": sim.info["email"],
                "apiToken": sim.info["apiToken"],
                "workspaceId": sim.info["workspaceId"],
            }
            stack.client("secretsmanager").create_secret(Name=stack.secret_id, SecretString=json.dumps(secret))
            env = {
                "ATLASSIAN_SECRET_ID": stack.secret_id,
                "ASSETS_API_BASE_URL": sim.info["baseUrl"],
                "MEDIA_ALLOWED_HOSTS": "127.0.0.1",
                "MAX_FILE_SIZE_BYTES": str(size),
            }
            print("preparing the S3 object and the local copy ...")
            s3_sha = put_big_object(s3, stack.bucket, "bench/big.zip", size)
            local = Path(tmp) / "big.zip"
            if write_big_file(local, size) and local.stat().st_size != size:
                raise SystemExit("local copy has the wrong size")
            uri = f"s3://{stack.bucket}/bench/big.zip"
            with patched_environ(env):
                runs = [
                    measured(sim, lambda: timed_python("assets-attach upload s3://... (streamed)", size,
                                                       "assets_attach", "upload", uri, "--object-id", "1234")),
                    measured(sim, lambda: timed_python("assets-attach upload ./file (same engine, local source)",
                                                       size, "assets_attach", "upload", str(local), "--object-id",
                                                       "1234")),
                    measured(sim, lambda: timed_curl(sim.info, local, size)),
                    measured(sim, lambda: timed_python("download to /tmp + requests.post(files=)", size,
                                                       "devstack.naive_upload", uri, "1234")),
                ]  # fmt: skip
            del s3_sha
    finally:
        sim.stop()

    product, local_engine, baseline = runs[0], runs[1], runs[2]
    ratio = product.mib_per_s / baseline.mib_per_s
    print(f"\nresults of {datetime.now(UTC):%Y-%m-%d} ({size // MiB} MiB, simulator on loopback)\n")
    print("| approach | MiB/s | seconds | peak RSS (MiB) | CPU s: client | S3 (moto) | simulator |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for run in runs:
        rss = f"{run.peak_rss / MiB:,.0f}" if run.peak_rss else "n/a"
        cpu = " | ".join(f"{run.cpu[k]:.2f}" for k in ("client", "s3", "sim"))
        print(f"| {run.name} | {run.mib_per_s:,.0f} | {run.seconds:,.1f} | {rss} | {cpu} |")
    verdict = "meets" if ratio >= TARGET_RATIO else "MISSES"
    print(f"\nassets-attach from S3 reaches {ratio:.0%} of curl's MiB/s ({verdict} the {TARGET_RATIO:.0%} target);")
    local_ratio = local_engine.mib_per_s / baseline.mib_per_s
    print(f"from a local file, without the S3 server's CPU on this machine: {local_ratio:.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
