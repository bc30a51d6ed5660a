"""Streaming, proven by memory: a 1 GiB upload costs what a 1 MiB one costs, within 16 MiB in one POST and 32 MiB
in chunks (MEDIA_UPLOAD_CONCURRENCY chunks of 5 MiB in flight and one read ahead are held at once)."""

from __future__ import annotations

import hashlib
import os

import pytest

from devstack import peak_rss
from devstack.bigfile import GiB, MiB, put_big_object
from devstack.stack import LocalStack, patched_environ

BOUND = {"single": 16 * MiB, "chunked": 32 * MiB}


def upload_peak_rss(uri: str, mode: str = "single") -> int:
    """Run ``assets-attach upload`` in a child process in ``MEDIA_UPLOAD_MODE=mode``; return its peak RSS in bytes."""
    with patched_environ({"MEDIA_UPLOAD_MODE": mode}):
        return peak_rss.run_measured("assets_attach", "upload", uri, "--object-id", "1234")[1]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["single", "chunked"])
def test_peak_rss_of_a_1_gib_upload_stays_flat(stack: LocalStack, mode: str) -> None:
    s3 = stack.client("s3")
    small_sha = put_big_object(s3, stack.bucket, "small.zip", MiB)
    big_sha = put_big_object(s3, stack.bucket, "big.zip", GiB)

    small_rss = upload_peak_rss(f"s3://{stack.bucket}/small.zip", mode)
    big_rss = upload_peak_rss(f"s3://{stack.bucket}/big.zip", mode)

    landed = {a.filename: a for a in stack.sim.attachments("1234")}
    assert (landed["small.zip"].size, landed["small.zip"].sha256) == (MiB, small_sha)
    assert (landed["big.zip"].size, landed["big.zip"].sha256) == (GiB, big_sha)
    print(f"peak RSS, {mode}: 1 MiB upload {small_rss / MiB:.1f} MiB, 1 GiB upload {big_rss / MiB:.1f} MiB")
    assert big_rss - small_rss <= BOUND[mode]


@pytest.mark.slow
def test_peak_rss_of_a_512_mib_jira_attachment_stays_flat(stack: LocalStack) -> None:
    """The Jira source streams too: 512 MiB costs what 1 MiB costs, within 16 MiB (the issue's bound)."""
    small = stack.sim.add_jira_attachment("SUP-1", "small.bin", os.urandom(MiB))
    big_data = bytes(512 * MiB)  # held by the simulator, in this process; the upload runs in a child
    big = stack.sim.add_jira_attachment("SUP-1", "big.bin", big_data)

    small_rss = upload_peak_rss(f"jira:{small}")  # one POST: the Jira source's own streaming, nothing else
    big_rss = upload_peak_rss(f"jira:{big}")

    landed = {a.filename: a for a in stack.sim.attachments("1234")}
    assert (landed["big.bin"].size, landed["big.bin"].sha256) == (512 * MiB, hashlib.sha256(big_data).hexdigest())
    print(f"peak RSS: 1 MiB Jira attachment {small_rss / MiB:.1f} MiB, 512 MiB one {big_rss / MiB:.1f} MiB")
    assert big_rss - small_rss <= 16 * MiB
