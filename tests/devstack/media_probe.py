"""One chunk PUT through the simulator's media host, timed: how the shaping test and `make bench` read the link."""

from __future__ import annotations

import hashlib
import time

import requests


def timed_chunk_put(base: str, headers: dict[str, str], data: bytes, timeout: float) -> tuple[float, requests.Response]:
    """Seconds one chunk PUT takes on a connection of its own, from its first byte to the answer, and the answer."""
    with requests.Session() as http:
        upload = http.post(f"{base}/upload", params={"createUpTo": "1"}, headers=headers, timeout=timeout).json()
        etag = f"sha256-{hashlib.sha256(data).hexdigest()}-{len(data)}"
        started = time.perf_counter()
        reply = http.put(
            f"{base}/chunk/{etag}",
            params={"uploadId": upload["data"][0]["id"], "partNumber": "1"},
            data=data,
            headers=headers,
            timeout=timeout,
        )
        return time.perf_counter() - started, reply
