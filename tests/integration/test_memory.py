"""Streaming, proven by memory: a 1 GiB upload must not cost more than a 1 MiB one, give or take 64 MiB."""

from __future__ import annotations

import hashlib
import os

import pytest

from devstack import peak_rss
from devstack.bigfile import GiB, MiB, put_big_object
from devstack.stack import LocalStack


def upload_peak_rss(uri: str) -> int:
    """Run ``assets-attach upload`` in a child process; return its peak RSS in bytes."""
    return peak_rss.run_measured("assets_attach", "upload", uri, "--object-id", "1234")[1]


@pytest.mark.slow
def test_peak_rss_of_a_1_gib_upload_stays_bounded(stack: LocalStack) -> None:
    s3 = stack.client("s3")
    small_sha = put_big_object(s3, stack.bucket, "small.zip", MiB)
    big_sha = put_big_object(s3, stack.bucket, "big.zip", GiB)

    small_rss = upload_peak_rss(f"s3://{stack.bucket}/small.zip")
    big_rss = upload_peak_rss(f"s3://{stack.bucket}/big.zip")

    landed = {a.filename: a for a in stack.sim.attachments("1234")}
    assert (landed["small.zip"].size, landed["small.zip"].sha256) == (MiB, small_sha)
    assert (landed["big.zip"].size, landed["big.zip"].sha256) == (GiB, big_sha)
    print(f"peak RSS: 1 MiB upload {small_rss / MiB:.1f} MiB, 1 GiB upload {big_rss / MiB:.1f} MiB")
    assert big_rss - small_rss <= 64 * MiB


@pytest.mark.slow
def test_peak_rss_of_a_512_mib_jira_attachment_stays_flat(stack: LocalStack) -> None:
    """The Jira source streams too: 512 MiB costs what 1 MiB costs, within 16 MiB (the issue's bound)."""
    small = stack.sim.add_jira_attachment("SUP-1", "small.bin", os.urandom(MiB))
    big_data = bytes(512 * MiB)  # held by the simulator, in this process; the upload runs in a child
    big = stack.sim.add_jira_attachment("SUP-1", "big.bin", big_data)

    small_rss = upload_peak_rss(f"jira:{small}")
    big_rss = upload_peak_rss(f"jira:{big}")

    landed = {a.filename: a for a in stack.sim.attachments("1234")}
    assert (landed["big.bin"].size, landed["big.bin"].sha256) == (512 * MiB, hashlib.sha256(big_data).hexdigest())
    print(f"peak RSS: 1 MiB Jira attachment {small_rss / MiB:.1f} MiB, 512 MiB one {big_rss / MiB:.1f} MiB")
    assert big_rss - small_rss <= 16 * MiB
