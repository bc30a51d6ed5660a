"""``make bench``'s WAN table (issue 22): the uploads through a media host shaped like a long network path.

The simulator caps each media connection at ``BENCH_LINK_MIBPS`` (default 25 MiB/s) and adds ``BENCH_RTT_MS``
(default 40 ms) before each media answer (``--link-mibps``, ``--rtt-ms``): one TCP flow over a long path. Through
it, medians of ``BENCH_ROUNDS`` (the approaches interleaved round by round): ``assets-attach`` in single mode; in
chunked mode at each concurrency of ``CONCURRENCIES``; and the two-curl pipe (curl GET S3 | curl POST), all over
the same shaping. Columns: MiB/s whole process, × single, CPU s/GiB of the uploading process(es), peak RSS; for
chunked mode also the upload itself (the first media request's arrival to the last one's answer) against the
ceiling that chunks of ``CHUNK`` bytes can reach, each holding its connection for a round trip more than its
transfer: ``concurrency × transfer / (transfer + rtt)`` times one connection.

First, the shaping's accuracy: one 64 MiB chunk PUT against its ideal time (2.56 s at 25 MiB/s, goal ± 10%).
"""

from __future__ import annotations

import os
import statistics
from typing import Any

from devstack.bench import (
    CHUNK,
    CONCURRENCY,
    Approach,
    SimulatorProcess,
    bench_stack,
    curl_pipe,
    measured,
    media_credentials,
    product_upload,
)
from devstack.bigfile import GiB, MiB, put_big_object
from devstack.media_probe import timed_chunk_put
from devstack.stack import patched_environ

CONCURRENCIES = (1, 2, 3, 4, 6, 8)
ACCURACY_BYTES = 64 * MiB
GOAL_ACCURACY = 0.10
GOAL_UPLOAD_VS_CEILING = 0.85  # chunked at the default concurrency, over the upload itself
GOAL_CHUNKED_VS_SINGLE = 2.4  # chunked at the default concurrency, whole process


def link() -> tuple[float, float]:
    """The shaping: MiB/s per connection and the round trip in ms."""
    return float(os.environ.get("BENCH_LINK_MIBPS", "25")), float(os.environ.get("BENCH_RTT_MS", "40"))


def ceiling(concurrency: int, link_mibps: float, rtt_ms: float, chunk: int = CHUNK) -> float:
    """The most ``concurrency`` chunks in flight can reach, as a multiple of one connection's rate."""
    transfer = chunk / (link_mibps * MiB)
    return concurrency * transfer / (transfer + rtt_ms / 1000)


def shaping_accuracy(sim: SimulatorProcess, link_mibps: float) -> str:
    """One ``ACCURACY_BYTES`` chunk PUT through the shaped media host, timed against its ideal."""
    creds = media_credentials(sim)
    headers = {"Authorization": f"Bearer {creds['mediaJwtToken']}", "X-Client-Id": creds["clientId"]}
    data = os.urandom(MiB) * (ACCURACY_BYTES // MiB)
    seconds, reply = timed_chunk_put(creds["mediaBaseUrl"], headers, data, timeout=120)
    reply.raise_for_status()
    ideal = ACCURACY_BYTES / (link_mibps * MiB)
    off = seconds / ideal - 1
    met = "met" if abs(off) <= GOAL_ACCURACY else "MISSED"
    return (
        f"shaping: a {ACCURACY_BYTES // MiB} MiB body at {link_mibps:g} MiB/s took {seconds:.2f} s, ideally "
        f"{ideal:.2f} s ({off:+.1%}, one round trip included; goal within ±{GOAL_ACCURACY:.0%}: {met})"
    )


def upload_window(recorded: list[dict[str, Any]]) -> float:
    """Seconds from the first media request's arrival to the last one's answer."""
    media = [r for r in recorded if r["path"].startswith("/media/")]
    return max(r["at"] for r in media) - min(r["started"] for r in media)


def wan_section(size: int, rounds: int) -> list[str]:
    link_mibps, rtt_ms = link()
    print(f"WAN: {link_mibps:g} MiB/s per media connection, {rtt_ms:g} ms round trip ...", flush=True)
    options = ("--link-mibps", str(link_mibps), "--rtt-ms", str(rtt_ms))
    with bench_stack(size, *options) as (stack, sim):
        accuracy = shaping_accuracy(sim, link_mibps)
        print(f"  {accuracy}", flush=True)
        s3 = stack.client("s3")
        put_big_object(s3, stack.bucket, "bench/wan.zip", size)
        uri = f"s3://{stack.bucket}/bench/wan.zip"
        windows: dict[int, list[float]] = {c: [] for c in CONCURRENCIES}

        def chunked(concurrency: int) -> Approach:
            def upload(n: int) -> tuple[int, str]:
                since = len(sim.requests_since(0))
                done = product_upload(uri, "chunked", concurrency)
                windows[concurrency].append(upload_window(sim.requests_since(since)))
                return done

            return Approach(f"assets-attach, chunked, {concurrency} in flight", upload)

        approaches = [
            Approach("assets-attach, single mode", lambda n: product_upload(uri, "single")),
            *(chunked(c) for c in CONCURRENCIES),
            Approach("curl GET S3 \\| curl POST", lambda n: curl_pipe(sim, s3, stack.bucket, "bench/wan.zip", n)),
        ]
        with patched_environ({"MAX_FILE_SIZE_BYTES": str(size)}):
            for round_number in range(1, rounds + 1):
                for approach in approaches:
                    approach.runs.append(measured(sim, approach.upload, size))
                    print(f"  round {round_number}: {approach.name}: {approach.runs[-1].seconds:.2f} s", flush=True)
    return [accuracy, "", *wan_report(approaches, windows, size, link_mibps, rtt_ms)]


def wan_report(
    approaches: list[Approach], windows: dict[int, list[float]], size: int, link_mibps: float, rtt_ms: float
) -> list[str]:
    single = approaches[0]
    gib = size / GiB
    lines = [
        f"WAN ({link_mibps:g} MiB/s per connection, {rtt_ms:g} ms round trip, {size // MiB} MiB):",
        "",
        "| approach | MiB/s | × single | CPU s/GiB | peak RSS (MiB) | upload itself MiB/s | × its ceiling |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for approach in approaches:
        concurrency = next((c for c in CONCURRENCIES if approach.name.endswith(f", {c} in flight")), None)
        if concurrency is not None:
            rate = size / MiB / statistics.median(windows[concurrency])
            most = ceiling(concurrency, link_mibps, rtt_ms) * link_mibps
            upload = f"{rate:,.1f} | {rate / most:.2f}"
        else:
            upload = " | "
        lines.append(
            f"| {approach.name} | {approach.mib_per_s(size):,.1f} | "
            f"{approach.mib_per_s(size) / single.mib_per_s(size):.2f} | {approach.median('cpu') / gib:.2f} | "
            f"{approach.median('peak_rss') / MiB:,.0f} | {upload} |"
        )
    lines.append("")
    rate = size / MiB / statistics.median(windows[CONCURRENCY])
    bound = ceiling(CONCURRENCY, link_mibps, rtt_ms)
    share = rate / (bound * link_mibps)
    lines.append(
        f"chunked, {CONCURRENCY} in flight, the upload itself: {rate:.1f} MiB/s = {share:.0%} of its ceiling "
        f"({bound:.2f}× one connection = {bound * link_mibps:.1f} MiB/s; goal at least "
        f"{GOAL_UPLOAD_VS_CEILING:.0%}: {'met' if share >= GOAL_UPLOAD_VS_CEILING else 'MISSED'})"
    )
    default = next(a for a in approaches if a.name.endswith(f", {CONCURRENCY} in flight"))
    whole = default.mib_per_s(size) / single.mib_per_s(size)
    lines.append(
        f"chunked, {CONCURRENCY} in flight, whole process: {whole:.2f}× single (goal at least "
        f"{GOAL_CHUNKED_VS_SINGLE:.1f}×: {'met' if whole >= GOAL_CHUNKED_VS_SINGLE else 'MISSED'})"
    )
    return lines
