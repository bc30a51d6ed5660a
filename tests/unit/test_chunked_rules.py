"""The chunked upload's pure rules (chunk sizes, etags, re-chunking) and its ordering, offline.

``FakeChunkedMedia`` keeps the media service's rules that the ordering depends on (appends in order at the right
offset, only chunks that were sent) in memory; the integration tier proves the wire calls against the simulator.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from assets_attach.atlassian.media_api import MediaCredentials, UploadedMedia
from assets_attach.atlassian.media_chunked import (
    APPEND_BATCH_BYTES,
    MAX_CHUNKS_PER_APPEND,
    Chunk,
    ChunkedFile,
    ChunkedUploader,
    GiB,
    MiB,
    TiB,
    UploadListener,
    chunk_count,
    chunk_etag,
    chunk_size_for,
    rechunk,
)
from assets_attach.errors import AtlassianError, FileTooLargeError, IntegrityError, MediaHostNotAllowedError
from assets_attach.job_record import ChunkedUpload

CREDS = MediaCredentials.model_validate(
    {"clientId": "client", "mediaBaseUrl": "https://api.media.atlassian.com", "mediaJwtToken": "jwt"}
)


# --------------------------------------------------------------------------------------------- chunk sizes and etags


@pytest.mark.parametrize(
    ("size", "chunk"),
    [
        (0, 5 * MiB),
        (1, 5 * MiB),
        (1 << 30, 5 * MiB),
        (5 * 10**9 + 1, 5 * MiB),  # binary units (MEDIA_CHUNKED.md, "Units"): 5 GB is still under 5 GiB
        (5 * GiB, 5 * MiB),
        (5 * GiB + 1, 50 * MiB),
        (50 * GiB, 50 * MiB),
        (50 * GiB + 1, 100 * MiB),
        (int(0.95 * TiB), 100 * MiB),
        (int(0.95 * TiB) + 1, 210 * MiB),
        (2 * TiB, 210 * MiB),
    ],
)
def test_chunk_size_for_in_binary_units(size: int, chunk: int) -> None:
    assert chunk_size_for(size) == chunk


def test_chunk_size_for_refuses_what_the_web_client_refuses() -> None:
    with pytest.raises(FileTooLargeError):
        chunk_size_for(2 * TiB + 1)
    with pytest.raises(ValueError, match="negative"):
        chunk_size_for(-1)


@pytest.mark.parametrize(("size", "count"), [(0, 0), (1, 1), (5, 1), (6, 2), (10, 2), (11, 3)])
def test_chunk_count(size: int, count: int) -> None:
    assert chunk_count(size, 5) == count


def test_chunk_etag() -> None:
    assert chunk_etag(b"abc") == "sha256-ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad-3"
    assert chunk_etag(b"x" * 1000).endswith("-1000")


# --------------------------------------------------------------------------------------------- re-chunking

DATA = bytes(range(256)) * 40  # 10,240 bytes


@pytest.mark.parametrize(
    ("block_sizes", "chunk_size"),
    [
        ([1] * 100, 7),  # tiny blocks
        ([10_240], 1000),  # one block spanning many chunks
        ([3000, 3000, 3000, 1240], 1024),  # blocks and chunks out of step
        ([1024] * 10, 1024),  # aligned
        ([0, 500, 0, 9740, 0], 4096),  # empty blocks on the way
        ([10_240], 20_000),  # a file smaller than one chunk
    ],
)
def test_rechunk_cuts_exact_chunks(block_sizes: list[int], chunk_size: int) -> None:
    blocks, start = [], 0
    for size in block_sizes:
        blocks.append(DATA[start : start + size])
        start += size
    data = b"".join(blocks)
    chunks = list(rechunk(blocks, chunk_size))
    assert b"".join(bytes(c) for c in chunks) == data
    assert all(len(c) == chunk_size for c in chunks[:-1])
    assert 0 < len(chunks[-1]) <= chunk_size
    assert len(chunks) == chunk_count(len(data), chunk_size)
    assert all(chunk_etag(c) == chunk_etag(bytes(c)) for c in chunks)


def test_rechunk_copies_nothing_a_chunk_is_views_of_the_blocks() -> None:
    blocks = [DATA[:1500], DATA[1500:3000]]
    first, second, third = rechunk(blocks, 1024)
    assert [p.obj for p in first.parts] == [blocks[0]]
    assert [p.obj for p in second.parts] == [blocks[0], blocks[1]]  # spans the two blocks
    assert [p.obj for p in third.parts] == [blocks[1]]


def test_rechunk_takes_any_bytes_like_block() -> None:
    chunks = list(rechunk([bytearray(DATA[:1500]), memoryview(DATA)[1500:3000]], 1024))
    assert b"".join(bytes(c) for c in chunks) == DATA[:3000]


def test_rechunk_of_nothing_is_nothing() -> None:
    assert list(rechunk([], 1024)) == []
    assert list(rechunk([b"", b""], 1024)) == []
    with pytest.raises(ValueError, match="positive"):
        list(rechunk([b"x"], 0))


def test_rechunk_reads_the_source_only_as_far_as_the_chunk_it_yields() -> None:
    pulled = 0

    def source() -> Iterator[bytes]:
        nonlocal pulled
        for start in range(0, len(DATA), 300):
            pulled += 1
            yield DATA[start : start + 300]

    chunks = rechunk(source(), 1000)
    next(chunks)
    assert pulled == 4  # 1,200 bytes: the first chunk and 200 bytes of the next, nothing more
    next(chunks)
    assert pulled == 7


# --------------------------------------------------------------------------------------------- ordering


class FakeChunkedMedia(ChunkedUploader):
    """The four calls in memory, with the service's ordering rules; a part in ``fail_parts`` fails with a 503."""

    def __init__(self, fail_parts: frozenset[int] = frozenset(), append_bytes: int = APPEND_BATCH_BYTES) -> None:
        super().__init__(requests.Session(), ["api.media.atlassian.com"], append_bytes)
        self.fail_parts = fail_parts
        self.lock = threading.Lock()
        self.sent: dict[str, bytes] = {}
        self.parts: list[int] = []
        self.appended: list[str] = []
        self.batches: list[int] = []
        self.uploads = 0

    def create_upload(self, credentials: MediaCredentials) -> str:
        self.uploads += 1
        return f"upload-{self.uploads}"

    def put_chunk(self, credentials: MediaCredentials, upload_id: str, part_number: int, data: bytes | Chunk) -> str:
        if part_number in self.fail_parts:
            raise AtlassianError("Atlassian answered 503", step="upload", status=503, retryable=True)
        etag = chunk_etag(data)
        with self.lock:
            self.sent[etag] = bytes(data)
            self.parts.append(part_number)
        return etag

    def append(self, credentials: MediaCredentials, upload_id: str, etags: list[str], offset: int) -> None:
        assert offset == len(self.appended), "append out of order"
        assert len(etags) <= MAX_CHUNKS_PER_APPEND
        assert all(e in self.sent for e in etags), "appended a chunk never sent"
        self.appended.extend(etags)
        self.batches.append(len(etags))

    def create_file(
        self, credentials: MediaCredentials, upload_id: str, name: str, mime_type: str, size: int
    ) -> UploadedMedia:
        assembled = b"".join(self.sent[e] for e in self.appended)
        assert len(assembled) == size
        return UploadedMedia(id=hashlib.sha256(assembled).hexdigest(), size=size)


class Heard(UploadListener):
    """What an upload reported: each resume point (the last one is what a job record keeps)."""

    def __init__(self) -> None:
        self.point: ChunkedUpload | None = None
        self.sent: list[tuple[int, int]] = []  # (chunks, bytes) accepted in file order
        self.appended: list[int] = []

    def on_created(self, point: ChunkedUpload) -> None:
        self.point = point

    def on_sent(self, point: ChunkedUpload, sent_bytes: int) -> None:
        self.point = point
        self.sent.append((point.sent or 0, sent_bytes))

    def on_appended(self, point: ChunkedUpload) -> None:
        self.point = point
        self.appended.append(point.appended)


def send(
    media: FakeChunkedMedia,
    data: bytes,
    chunk_size: int,
    listener: UploadListener | None = None,
    resume: ChunkedUpload | None = None,
) -> UploadedMedia:
    file = ChunkedFile("f.bin", "application/octet-stream", len(data), [data], chunk_size)
    return media.upload(CREDS, file, concurrency=3, resume=resume, listener=listener)


def test_chunks_are_reported_sent_in_file_order_and_appended_in_order() -> None:
    media = FakeChunkedMedia(append_bytes=4000)
    data = DATA * 3
    heard = Heard()
    result = send(media, data, 1000, heard)
    assert result.id == hashlib.sha256(data).hexdigest()
    assert sorted(media.parts) == list(range(1, 32))
    progress, appended = heard.sent, heard.appended
    assert progress[-1] == (31, len(data))
    assert progress == sorted(progress)
    steps = [b - a for a, b in itertools.pairwise([0, *appended])]
    assert appended[-1] == 31 and all(step >= 4 for step in steps[:-1])  # batches of 4,000 bytes or more


def test_appends_are_batched_to_at_most_8_calls_per_gib() -> None:
    """MEDIA_CHUNKED.md: the web client appends up to 1,000 etags per call; 5 MiB chunks of a 1 GiB file."""
    media = FakeChunkedMedia()
    assert media.append_batch(5 * MiB) == 26
    assert -(-chunk_count(GiB, 5 * MiB) // media.append_batch(5 * MiB)) == 8
    scaled = FakeChunkedMedia(append_bytes=APPEND_BATCH_BYTES >> 10)  # the same ratio at 1/1024 of the sizes
    send(scaled, bytes(GiB >> 10), 5 * 1024)
    # At most 8: an append in flight lets the next batch grow (appends run on a thread of their own).
    assert len(scaled.batches) <= 8 and sum(scaled.batches) == chunk_count(GiB >> 10, 5 * 1024)


def test_appends_come_in_batches_of_at_most_a_thousand() -> None:
    media = FakeChunkedMedia()
    data = bytes(2500)
    media.upload(CREDS, ChunkedFile("f", "t", len(data), [data], 1), concurrency=2)
    assert sum(media.batches) == 2500
    assert max(media.batches) <= MAX_CHUNKS_PER_APPEND


def test_a_failed_chunk_stops_the_upload_after_reporting_the_chunks_before_it_sent() -> None:
    media = FakeChunkedMedia(fail_parts=frozenset({6}))
    heard = Heard()
    with pytest.raises(AtlassianError) as failed:
        send(media, DATA, 1000, heard)
    assert failed.value.retryable
    assert heard.sent[-1][0] == 5 and not media.appended  # a resume appends those five by their etags
    assert max(media.parts) <= 5 + 3  # at most a window past the failed part was sent


def test_a_failing_progress_callback_stops_the_upload() -> None:
    media = FakeChunkedMedia()

    class Persist(UploadListener):
        def on_sent(self, point: ChunkedUpload, sent_bytes: int) -> None:
            if (point.sent or 0) >= 2:
                raise OSError("the job store is gone")

    with pytest.raises(OSError, match="job store"):
        send(media, DATA, 1000, Persist())
    assert len(media.parts) < 10


def test_resume_starts_at_the_next_part() -> None:
    media = FakeChunkedMedia()
    media.sent = {chunk_etag(DATA[:1000]): DATA[:1000], chunk_etag(DATA[1000:2000]): DATA[1000:2000]}
    media.appended = list(media.sent)
    heard = Heard()
    result = media.upload(
        CREDS,
        ChunkedFile("f", "t", len(DATA), [DATA[2000:]], 1000),
        concurrency=3,
        resume=ChunkedUpload(uploadId="upload-0", chunkSize=1000, appended=2),
        listener=heard,
    )
    assert min(media.parts) == 3 and media.uploads == 0
    assert heard.sent[-1] == (11, len(DATA))
    assert result.id == hashlib.sha256(DATA).hexdigest()


def test_upload_checks_its_arguments_before_any_call() -> None:
    media = FakeChunkedMedia()
    with pytest.raises(ValueError, match="do not fit"):
        send(media, DATA, 1000, resume=ChunkedUpload(uploadId="u", chunkSize=1000, appended=12))
    with pytest.raises(ValueError, match="do not fit"):
        send(media, DATA, 1000, resume=ChunkedUpload(uploadId="u", chunkSize=1000, appended=3, sent=2))
    with pytest.raises(ValueError, match="not 1000"):  # a resume point of another chunk size
        send(media, DATA, 1000, resume=ChunkedUpload(uploadId="u", chunkSize=500, appended=1))
    with pytest.raises(ValueError, match="positive"):
        send(media, DATA, 0)
    hostile = CREDS.model_copy(update={"media_base_url": "https://evil.example.com"})
    with pytest.raises(MediaHostNotAllowedError):
        media.upload(hostile, ChunkedFile("f", "t", 3, [b"abc"], 1000), concurrency=1)
    assert media.uploads == 0 and not media.parts


def test_a_source_that_is_short_or_long_is_an_integrity_error() -> None:
    with pytest.raises(IntegrityError, match="gave 10240 of its 10241"):
        FakeChunkedMedia().upload(CREDS, ChunkedFile("f", "t", len(DATA) + 1, [DATA], 1000), concurrency=2)
    with pytest.raises(IntegrityError, match="more than"):
        FakeChunkedMedia().upload(CREDS, ChunkedFile("f", "t", len(DATA) - 1, [DATA], 1000), concurrency=2)


# --------------------------------------------------------------------------------------------- the environment, once


def test_the_environment_is_read_once_per_media_host_and_given_with_each_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """The chunked session does not scan the environment per request (trust_env off); its proxies and NO_PROXY
    still apply, read once by requests itself."""
    from assets_attach.atlassian.http_session import environment_settings, new_session

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert environment_settings("https://api.media.atlassian.com")["proxies"]["https"] == "http://proxy.example:3128"
    assert not environment_settings("http://127.0.0.1:8080/media")["proxies"]
    session = new_session(4, trust_env=False)
    assert not session.trust_env
    calls: list[dict[str, Any]] = []

    def request(method: str, url: str, **kwargs: Any) -> requests.Response:
        calls.append(kwargs)
        reply = requests.Response()
        reply.status_code, reply._content = 201, b'{"data": [{"id": "u1"}]}'
        return reply

    monkeypatch.setattr(session, "request", request)
    uploader = ChunkedUploader(session, ["api.media.atlassian.com"])
    for _ in range(3):
        uploader.create_upload(CREDS)
    assert len(calls) == 3, calls
    assert all(call["proxies"]["https"] == "http://proxy.example:3128" for call in calls), calls
