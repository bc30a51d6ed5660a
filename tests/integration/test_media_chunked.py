"""The chunked upload over real HTTP: the simulator's strict protocol, and ChunkedUploader against it."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator

import pytest
import requests

from assets_attach.atlassian.http_session import media_retry, new_session
from assets_attach.atlassian.media_api import MediaCredentials, UploadedMedia
from assets_attach.atlassian.media_chunked import Chunk, ChunkedFile, ChunkedUploader, UploadListener, chunk_etag
from assets_attach.errors import (
    AtlassianError,
    ChunkedUploadRefusedError,
    ChunkedUploadStaleError,
    IntegrityError,
    MediaTokenExpiredError,
)
from assets_attach.job_record import ChunkedUpload
from devstack.atlassian_sim import STEPS, AtlassianSimulator, Fault

OBJ = "1234"
CHUNK = 256 << 10  # small chunks keep the tests fast; the protocol takes any size
CHUNKED_STEPS = ("media-upload-create", "media-chunk", "media-append", "media-file-create")


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with new_session() as session:
        yield session


@pytest.fixture
def creds(http: requests.Session, sim: AtlassianSimulator) -> MediaCredentials:
    url = f"{sim.base_url}/jsm/assets/workspace/{sim.workspace_id}/v1/attachments/object/{OBJ}/credentials"
    response = http.get(url, auth=(sim.email, sim.api_token), timeout=10)
    assert response.status_code == 200, response.text
    return MediaCredentials.model_validate(response.json())


@pytest.fixture
def uploader(http: requests.Session) -> ChunkedUploader:
    return ChunkedUploader(http, ["127.0.0.1"], append_bytes=2 * CHUNK)  # appends in batches of two chunks


# --------------------------------------------------------------------------------------------- helpers


def media_headers(creds: MediaCredentials, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {creds.token.get_secret_value()}", "X-Client-Id": creds.client_id, **extra}


def new_upload(http: requests.Session, creds: MediaCredentials) -> str:
    response = http.post(
        f"{creds.media_base_url}/upload",
        params={"createUpTo": "1", "hashAlgorithm": "sha256"},
        headers=media_headers(creds),
        timeout=10,
    )
    assert response.status_code == 201, response.text
    slots = response.json()["data"]
    assert len(slots) == 1 and slots[0]["expires"] > slots[0]["created"]
    upload_id: str = slots[0]["id"]
    return upload_id


def put_chunk(
    http: requests.Session, creds: MediaCredentials, upload_id: str, part: int, data: bytes, etag: str | None = None
) -> requests.Response:
    return http.put(
        f"{creds.media_base_url}/chunk/{etag or chunk_etag(data)}",
        params={"uploadId": upload_id, "partNumber": str(part)},
        data=data,
        headers=media_headers(creds, **{"Content-Type": "application/octet-stream"}),
        timeout=10,
    )


def append(
    http: requests.Session, creds: MediaCredentials, upload_id: str, etags: list[str], offset: int
) -> requests.Response:
    return http.put(
        f"{creds.media_base_url}/upload/{upload_id}/chunks",
        json={"chunks": etags, "offset": offset},
        headers=media_headers(creds),
        timeout=10,
    )


def create_file(http: requests.Session, creds: MediaCredentials, upload_id: str, size: int) -> requests.Response:
    return http.post(
        f"{creds.media_base_url}/file/upload",
        json={
            "uploadId": upload_id,
            "name": "big.bin",
            "mimeType": "application/octet-stream",
            "conditions": {"size": size},
        },
        headers=media_headers(creds),
        timeout=10,
    )


def link(http: requests.Session, sim: AtlassianSimulator, media_id: str, size: int) -> requests.Response:
    item = {"contentType": "application/zip", "filename": "big.zip", "mediaId": media_id, "size": size, "comment": ""}
    return http.post(
        f"{sim.base_url}/jsm/assets/workspace/{sim.workspace_id}/v1/attachments/object/{OBJ}",
        json={"attachments": [item]},
        auth=(sim.email, sim.api_token),
        timeout=10,
    )


def blocks(data: bytes, size: int) -> Iterator[bytes]:
    """``data`` in blocks of ``size`` bytes, as a source streams it."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


class Saved(UploadListener):
    """What an upload reported: the last resume point (what a job record keeps), and the steps on the way."""

    def __init__(self) -> None:
        self.point: ChunkedUpload | None = None
        self.created: list[str] = []
        self.sent: list[tuple[int, int]] = []  # (chunks, bytes) accepted in file order

    @property
    def resume(self) -> ChunkedUpload:
        assert self.point is not None, "no upload was created"
        return self.point

    def on_created(self, point: ChunkedUpload) -> None:
        self.point = point
        self.created.append(point.uploadId)

    def on_sent(self, point: ChunkedUpload, sent_bytes: int) -> None:
        self.point = point
        self.sent.append((point.sent or 0, sent_bytes))

    def on_appending(self, point: ChunkedUpload) -> None:
        self.point = point

    def on_appended(self, point: ChunkedUpload) -> None:
        self.point = point


def upload_all(
    uploader: ChunkedUploader,
    creds: MediaCredentials,
    data: bytes,
    *,
    chunks: Iterable[bytes] | None = None,
    concurrency: int = 3,
    resume: ChunkedUpload | None = None,
    listener: UploadListener | None = None,
) -> UploadedMedia:
    blocks_ = blocks(data, 100_000) if chunks is None else chunks
    file = ChunkedFile("big.zip", "application/zip", len(data), blocks_, CHUNK)
    return uploader.upload(creds, file, concurrency=concurrency, resume=resume, listener=listener)


class SourceCut(Exception):
    """The source stopped mid-file (a killed worker, a dropped S3 stream)."""


def cut_after(source: Iterator[bytes], count: int, once: Callable[[], bool] = lambda: True) -> Iterator[bytes]:
    """``count`` blocks, then SourceCut as soon as ``once()`` holds (the uploader reads one chunk ahead: ``once`` lets
    the chunks in flight reach the simulator first, so that the cut comes at a known point)."""
    for index, block in enumerate(source):
        if index == count:
            while not once():
                time.sleep(0.005)
            raise SourceCut
        yield block


# --------------------------------------------------------------------------------------------- the simulator, strictly


def test_chunked_steps_are_fault_steps() -> None:
    assert set(CHUNKED_STEPS) <= STEPS


def test_chunk_whose_etag_does_not_match_is_refused(
    http: requests.Session, sim: AtlassianSimulator, creds: MediaCredentials
) -> None:
    upload_id = new_upload(http, creds)
    data = os.urandom(10_000)
    digest = hashlib.sha256(data).hexdigest()
    other = hashlib.sha256(b"other bytes").hexdigest()
    for etag in (f"sha256-{other}-{len(data)}", f"sha256-{digest}-{len(data) + 1}", f"sha256-{digest}-9999"):
        response = put_chunk(http, creds, upload_id, 1, data, etag)
        assert response.status_code == 400, etag
        assert "do not match" in response.json()["errorMessages"][0]
    for etag in (f"md5-{digest}-{len(data)}", f"sha256-{digest.upper()}-{len(data)}", f"sha256-{digest}-0"):
        assert put_chunk(http, creds, upload_id, 1, data, etag).status_code == 400, etag
    stats = sim.chunk_stats()
    assert stats["chunksAccepted"] == 0 and stats["chunksHeld"] == 0
    assert stats["chunkBytesReceived"] == 6 * len(data)  # every body read, refused or not (small ones are drained)
    etag = chunk_etag(data)
    assert append(http, creds, upload_id, [etag], 0).status_code == 400  # never accepted, so not appendable


def test_chunk_needs_a_known_upload_and_a_part_number(
    http: requests.Session, sim: AtlassianSimulator, creds: MediaCredentials
) -> None:
    upload_id = new_upload(http, creds)
    data = b"chunk"
    assert put_chunk(http, creds, "no-such-upload", 1, data).status_code == 404
    for part in ("0", "-1", "x", ""):
        response = http.put(
            f"{creds.media_base_url}/chunk/{chunk_etag(data)}",
            params={"uploadId": upload_id, "partNumber": part},
            data=data,
            headers=media_headers(creds),
            timeout=10,
        )
        assert response.status_code == 400, part


def test_same_chunk_twice_is_harmless_and_held_once(
    http: requests.Session, sim: AtlassianSimulator, creds: MediaCredentials
) -> None:
    upload_id = new_upload(http, creds)
    data = os.urandom(50_000)
    assert put_chunk(http, creds, upload_id, 1, data).status_code == 201
    assert put_chunk(http, creds, upload_id, 1, data).status_code == 201
    assert put_chunk(http, creds, upload_id, 2, data).status_code == 201  # the same bytes at another part
    stats = sim.chunk_stats()
    assert (stats["chunksAccepted"], stats["chunksHeld"], stats["chunkBytesHeld"]) == (3, 1, len(data))
    etag = chunk_etag(data)
    assert append(http, creds, upload_id, [etag], 0).status_code == 200
    assert sim.chunk_stats()["chunksHeld"] == 1  # still awaited as part 2
    assert append(http, creds, upload_id, [etag], 1).status_code == 200
    assert sim.chunk_stats()["chunksHeld"] == 0  # every part it was sent for is appended: released
    response = create_file(http, creds, upload_id, 2 * len(data))
    assert response.status_code == 201, response.text
    assert sim.uploads[response.json()["data"]["id"]].sha256 == hashlib.sha256(data + data).hexdigest()


def test_append_at_the_wrong_offset_is_refused(
    http: requests.Session, sim: AtlassianSimulator, creds: MediaCredentials
) -> None:
    upload_id = new_upload(http, creds)
    parts = [os.urandom(1000) for _ in range(3)]
    etags = [chunk_etag(p) for p in parts]
    for number, part in enumerate(parts, start=1):
        assert put_chunk(http, creds, upload_id, number, part).status_code == 201
    assert append(http, creds, upload_id, etags[:1], 1).status_code == 409  # nothing appended yet
    assert append(http, creds, upload_id, etags[:1], 0).status_code == 200
    assert append(http, creds, upload_id, etags[1:], 0).status_code == 409  # a replay at the old offset
    assert append(http, creds, upload_id, etags[1:], 2).status_code == 409
    unknown = chunk_etag(b"never sent")
    assert append(http, creds, upload_id, [unknown], 1).status_code == 400
    for body in ({"chunks": etags[1:]}, {"chunks": "x", "offset": 1}, {"chunks": etags[1:], "offset": True}):
        response = http.put(
            f"{creds.media_base_url}/upload/{upload_id}/chunks", json=body, headers=media_headers(creds), timeout=10
        )
        assert response.status_code == 400, body
    assert append(http, creds, upload_id, etags[1:], 1).status_code == 200
    assert append(http, creds, "no-such-upload", etags, 0).status_code == 404


def test_create_file_with_the_wrong_size_is_refused(
    http: requests.Session, sim: AtlassianSimulator, creds: MediaCredentials
) -> None:
    upload_id = new_upload(http, creds)
    data = os.urandom(4000)
    assert put_chunk(http, creds, upload_id, 1, data).status_code == 201
    assert append(http, creds, upload_id, [chunk_etag(data)], 0).status_code == 200
    for size in (len(data) - 1, len(data) + 1, 0):
        response = create_file(http, creds, upload_id, size)
        assert response.status_code == 400, size
        assert "does not match" in response.json()["errorMessages"][0]
    assert not sim.uploads
    assert create_file(http, creds, "no-such-upload", len(data)).status_code == 404
    assert create_file(http, creds, upload_id, len(data)).status_code == 201


def test_chunked_calls_need_the_media_token_and_its_client(
    http: requests.Session, sim: AtlassianSimulator, creds: MediaCredentials
) -> None:
    upload_id = new_upload(http, creds)
    calls = [
        ("POST", f"{creds.media_base_url}/upload?createUpTo=1&hashAlgorithm=sha256", None),
        ("PUT", f"{creds.media_base_url}/chunk/{chunk_etag(b'x')}?uploadId={upload_id}&partNumber=1", b"x"),
        ("PUT", f"{creds.media_base_url}/upload/{upload_id}/chunks", b'{"chunks": [], "offset": 0}'),
        ("POST", f"{creds.media_base_url}/file/upload", b"{}"),
    ]
    for method, url, body in calls:
        no_token = http.request(method, url, data=body, headers={"X-Client-Id": creds.client_id}, timeout=10)
        assert no_token.status_code == 401, url
        other_client = media_headers(creds, **{"X-Client-Id": "someone-else"})
        assert http.request(method, url, data=body, headers=other_client, timeout=10).status_code == 403, url
    sim.expire_tokens()
    assert put_chunk(http, creds, upload_id, 1, b"x").status_code == 401


def test_upload_creation_checks_its_query(http: requests.Session, creds: MediaCredentials) -> None:
    url = f"{creds.media_base_url}/upload"
    for query in ({"createUpTo": "0"}, {"createUpTo": "x"}, {"hashAlgorithm": "md5"}):
        assert http.post(url, params=query, headers=media_headers(creds), timeout=10).status_code == 400, query
    several = http.post(url, params={"createUpTo": "3"}, headers=media_headers(creds), timeout=10)
    assert len({slot["id"] for slot in several.json()["data"]}) == 3


@pytest.mark.parametrize("step", CHUNKED_STEPS)
def test_status_fault_on_each_chunked_step(
    http: requests.Session, sim: AtlassianSimulator, creds: MediaCredentials, step: str
) -> None:
    upload_id = new_upload(http, creds)
    data = os.urandom(2000)
    calls = {
        "media-upload-create": lambda: http.post(
            f"{creds.media_base_url}/upload?createUpTo=1", headers=media_headers(creds), timeout=10
        ),
        "media-chunk": lambda: put_chunk(http, creds, upload_id, 1, data),
        "media-append": lambda: append(http, creds, upload_id, [chunk_etag(data)], 0),
        "media-file-create": lambda: create_file(http, creds, upload_id, len(data)),
    }
    if step in ("media-append", "media-file-create"):
        assert calls["media-chunk"]().status_code == 201
    if step == "media-file-create":
        assert calls["media-append"]().status_code == 200
    sim.inject(step, Fault(status=503, retry_after=2))
    faulted = calls[step]()
    assert (faulted.status_code, faulted.headers.get("Retry-After")) == (503, "2")
    assert calls[step]().status_code in (200, 201)


def test_chunk_drop_fault_cuts_the_body_and_counts_what_arrived(
    http: requests.Session, sim: AtlassianSimulator, creds: MediaCredentials
) -> None:
    upload_id = new_upload(http, creds)
    data = os.urandom(4 << 20)
    sim.inject("media-chunk", Fault(drop_after_bytes=1 << 20))
    with pytest.raises(requests.exceptions.ConnectionError):
        put_chunk(http, creds, upload_id, 1, data)
    stats = sim.chunk_stats()
    assert stats["chunksAccepted"] == 0
    assert (1 << 20) <= stats["chunkBytesReceived"] < len(data)
    assert put_chunk(http, creds, upload_id, 1, data).status_code == 201


def test_stats_route_serves_the_counters(http: requests.Session, sim: AtlassianSimulator) -> None:
    response = http.get(f"{sim.base_url}/__sim/stats", timeout=10)
    assert response.status_code == 200
    assert response.json() == sim.chunk_stats()


# --------------------------------------------------------------------------------------------- the client


def test_chunked_upload_assembles_the_exact_bytes_and_links(
    http: requests.Session, sim: AtlassianSimulator, uploader: ChunkedUploader, creds: MediaCredentials
) -> None:
    data = os.urandom(7 * CHUNK + 12_345)  # source blocks that do not line up with the chunks
    saved = Saved()
    media = upload_all(uploader, creds, data, listener=saved)
    progress = saved.sent
    stored = sim.uploads[media.id]
    assert (stored.size, stored.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert (stored.chunked_upload_id, stored.name, stored.content_type) == (
        saved.created[0],
        "big.zip",
        "application/zip",
    )
    assert progress[-1] == (8, len(data))
    assert [n for n, _ in progress] == sorted({n for n, _ in progress})  # in order, each step once
    assert all(b == min(n * CHUNK, len(data)) for n, b in progress)
    chunk_puts = [r for r in sim.requests if r.path.startswith("/media/chunk/")]
    assert sorted(int(r.query["partNumber"]) for r in chunk_puts) == list(range(1, 9))
    appends = [r for r in sim.requests if r.path.endswith("/chunks")]
    assert 1 <= len(appends) <= 4  # batches of at least APPEND_BYTES (2 chunks here), not one call per chunk
    assert sim.chunk_stats()["chunkBytesAccepted"] == len(data)
    assert sim.chunk_stats()["chunksHeld"] == 0  # everything appended was released
    response = link(http, sim, media.id, len(data))
    assert response.status_code == 201, response.text
    assert [(a.media_id, a.sha256) for a in sim.attachments(OBJ)] == [(media.id, stored.sha256)]


def test_chunk_aligned_and_empty_files(
    sim: AtlassianSimulator, uploader: ChunkedUploader, creds: MediaCredentials
) -> None:
    aligned = os.urandom(3 * CHUNK)
    media = upload_all(uploader, creds, aligned, chunks=blocks(aligned, CHUNK), concurrency=1)
    assert sim.uploads[media.id].sha256 == hashlib.sha256(aligned).hexdigest()
    empty = upload_all(uploader, creds, b"", chunks=iter(()))
    assert (sim.uploads[empty.id].size, empty.id != media.id) == (0, True)


def test_source_with_the_wrong_byte_count_creates_nothing(
    sim: AtlassianSimulator, uploader: ChunkedUploader, creds: MediaCredentials
) -> None:
    data = os.urandom(2 * CHUNK)
    with pytest.raises(IntegrityError, match="more than"):
        uploader.upload(creds, ChunkedFile("a", "b", len(data) - 1, [data], CHUNK), concurrency=2)
    with pytest.raises(IntegrityError, match="gave"):
        uploader.upload(creds, ChunkedFile("a", "b", len(data) + 1, [data], CHUNK), concurrency=2)
    assert not sim.uploads


def test_disabled_protocol_is_a_distinguishable_refusal(
    http: requests.Session, sim: AtlassianSimulator, uploader: ChunkedUploader, creds: MediaCredentials
) -> None:
    sim.chunked_enabled = False
    with pytest.raises(ChunkedUploadRefusedError) as refused:
        upload_all(uploader, creds, b"abc")
    assert (refused.value.status, refused.value.retryable, refused.value.step) == (404, False, "upload")
    assert not [r for r in sim.requests if r.path.startswith("/media/chunk")]  # nothing sent after the refusal
    assert create_file(http, creds, "any", 3).status_code == 404
    assert append(http, creds, "any", [], 0).status_code == 404


@pytest.mark.parametrize("status", [403, 404, 405])
@pytest.mark.parametrize("step", CHUNKED_STEPS)
def test_a_refusal_at_any_step_of_a_fresh_upload_is_a_refusal(
    sim: AtlassianSimulator, uploader: ChunkedUploader, creds: MediaCredentials, step: str, status: int
) -> None:
    """ATLASSIAN_FACTS.md, "Media service (chunked upload)": nobody has shown that the per-object JWT covers the
    chunk, append and create-file calls; a refusal at any of them means "send it in one POST", not "fail"."""
    sim.inject(step, Fault(status=status))
    with pytest.raises(ChunkedUploadRefusedError) as refused:
        upload_all(uploader, creds, os.urandom(3 * CHUNK))
    assert (refused.value.status, refused.value.retryable) == (status, False)


def test_a_server_error_is_no_refusal(
    sim: AtlassianSimulator, uploader: ChunkedUploader, creds: MediaCredentials
) -> None:
    sim.inject("media-upload-create", Fault(status=503))  # this session retries nothing: the error shows
    with pytest.raises(AtlassianError) as failed:
        upload_all(uploader, creds, b"abc")
    assert not isinstance(failed.value, ChunkedUploadRefusedError)
    assert (failed.value.status, failed.value.retryable) == (503, True)


def test_media_calls_are_retried_inline_on_5xx_and_network_errors_but_not_on_429(
    sim: AtlassianSimulator, creds: MediaCredentials
) -> None:
    """MEDIA_CHUNKED.md, "Retries": up to 5 tries on network errors and 5xx, not on 429."""
    with new_session(retry=media_retry(first_wait=0.01)) as session:
        uploader = ChunkedUploader(session, ["127.0.0.1"], append_bytes=2 * CHUNK)
        data = os.urandom(3 * CHUNK)
        sim.inject("media-upload-create", Fault(status=503, times=4))
        sim.inject("media-chunk", Fault(status=502, times=2))
        sim.inject("media-append", Fault(drop_after_bytes=0))
        sim.inject("media-file-create", Fault(status=500))
        media = upload_all(uploader, creds, data, concurrency=1)
        assert sim.uploads[media.id].sha256 == hashlib.sha256(data).hexdigest()
        assert len([r for r in sim.requests if r.path == "/media/upload"]) == 5
        sim.inject("media-upload-create", Fault(status=503, times=5))
        with pytest.raises(AtlassianError) as exhausted:
            upload_all(uploader, creds, data)
        assert (exhausted.value.status, exhausted.value.retryable) == (503, True)
        sim.inject("media-upload-create", Fault(status=429, retry_after=1))
        before = len(sim.requests)
        with pytest.raises(AtlassianError) as limited:
            upload_all(uploader, creds, data)
        assert (limited.value.status, limited.value.retry_after) == (429, 1)
        assert len(sim.requests) == before + 1  # a 429 goes back to the job's back-off, not around again here


def test_expired_token_mid_upload_asks_for_fresh_credentials(
    sim: AtlassianSimulator, uploader: ChunkedUploader, creds: MediaCredentials
) -> None:
    upload_id = uploader.create_upload(creds)
    sim.expire_tokens()
    with pytest.raises(MediaTokenExpiredError):
        resume = ChunkedUpload(uploadId=upload_id, chunkSize=CHUNK, appended=0)
        upload_all(uploader, creds, os.urandom(3 * CHUNK), resume=resume)


def test_failed_chunk_is_raised_retryable_after_reporting_what_came_before_as_sent(
    sim: AtlassianSimulator, uploader: ChunkedUploader, creds: MediaCredentials
) -> None:
    data = os.urandom(6 * CHUNK)
    saved = Saved()

    def source() -> Iterator[bytes]:
        for index, block in enumerate(blocks(data, CHUNK)):
            if index == 3:  # the fourth chunk's PUT fails: read ahead, it comes once the third was accepted
                while sim.chunk_stats()["chunksAccepted"] < 3:
                    time.sleep(0.005)
                sim.inject("media-chunk", Fault(status=502))
            yield block

    with pytest.raises(AtlassianError) as failed:
        upload_all(uploader, creds, data, chunks=source(), concurrency=1, listener=saved)
    assert (failed.value.status, failed.value.retryable, failed.value.step) == (502, True, "upload")
    assert saved.sent[-1] == (3, 3 * CHUNK)
    assert not sim.uploads
    assert len([r for r in sim.requests if r.path.startswith("/media/chunk/")]) == 4  # nothing sent after it


def test_resume_sends_only_the_chunks_not_yet_accepted(
    sim: AtlassianSimulator, uploader: ChunkedUploader, creds: MediaCredentials
) -> None:
    data = os.urandom(10 * CHUNK + 777)
    saved = Saved()
    with pytest.raises(SourceCut):
        upload_all(uploader, creds, data, chunks=cut_after(blocks(data, CHUNK), 4), listener=saved)
    # Chunks 1 to 4 were read; those accepted before the source failed were reported (some may have been cancelled
    # before they started), the first two or four of them maybe appended too.
    sent, appended = saved.resume.sent or 0, saved.resume.appended
    assert 1 <= sent <= 4 and appended <= sent and saved.sent[-1] == (sent, sent * CHUNK)
    before = sim.chunk_stats()
    again = Saved()
    media = upload_all(
        uploader, creds, data, chunks=blocks(data[appended * CHUNK :], 100_000), resume=saved.resume, listener=again
    )
    after = sim.chunk_stats()
    assert after["chunkBytesReceived"] - before["chunkBytesReceived"] == len(data) - sent * CHUNK  # none sent twice
    assert after["chunksAccepted"] - before["chunksAccepted"] == 11 - sent
    assert again.sent[-1] == (11, len(data))
    assert sim.uploads[media.id].sha256 == hashlib.sha256(data).hexdigest()
    assert len([r for r in sim.requests if r.path == "/media/upload"]) == 1  # the same upload, continued


def test_resume_after_a_failed_chunk_resends_at_most_concurrency_chunks(
    sim: AtlassianSimulator, uploader: ChunkedUploader, creds: MediaCredentials
) -> None:
    data = os.urandom(20 * CHUNK)
    concurrency = 3
    saved = Saved()

    def source() -> Iterator[bytes]:
        for index, block in enumerate(blocks(data, CHUNK)):
            if index == 12:
                sim.inject("media-chunk", Fault(status=500))  # whichever PUT arrives next fails
            yield block

    with pytest.raises(AtlassianError) as failed:
        upload_all(uploader, creds, data, chunks=source(), concurrency=concurrency, listener=saved)
    assert failed.value.retryable
    first = sim.chunk_stats()
    sent, appended = saved.resume.sent or 0, saved.resume.appended
    wasted = first["chunkBytesAccepted"] - sent * CHUNK  # accepted the first time, not reported
    assert 0 <= wasted <= concurrency * CHUNK
    media = upload_all(uploader, creds, data, chunks=blocks(data[appended * CHUNK :], CHUNK), resume=saved.resume)
    assert sim.chunk_stats()["chunkBytesReceived"] - first["chunkBytesReceived"] == len(data) - sent * CHUNK
    assert sim.uploads[media.id].sha256 == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("case", ["not appended", "appended, the record lagging", "chunks gone"])
def test_chunks_sent_but_not_appended_are_settled_by_etag_or_the_upload_starts_anew(
    sim: AtlassianSimulator, creds: MediaCredentials, case: str
) -> None:
    """A crash after chunks were accepted and before their append: a resume appends them by etag, without sending
    them again (MEDIA_CHUNKED.md). A crash while an append was on its way (recorded before it was sent): a refusal
    of the settle says that append took, and the rest are appended after it. Any other 4xx on the settle (the
    service dropped them) says the upload is not where the record says: a new upload (ATLASSIAN_FACTS.md: the
    statuses are unpublished, so they are not told apart)."""
    with new_session() as session:
        lagging = case == "appended, the record lagging"
        # Four chunks sent; an append of those four made (lagging) or not yet due (a batch is five).
        uploader = ChunkedUploader(session, ["127.0.0.1"], append_bytes=(4 if lagging else 5) * CHUNK)
        data = os.urandom(6 * CHUNK + 99)

        class Killed(Saved):
            def on_appended(self, point: ChunkedUpload) -> None:
                if lagging:
                    raise SourceCut  # killed after the append took, before its record
                super().on_appended(point)

        saved = Killed()

        # Cut once the chunks read so far were accepted (and, lagging, the append of the first four answered).
        sent = 5 if lagging else 4
        appends = [r for r in sim.requests if r.path.endswith("/chunks")]
        with pytest.raises(SourceCut):
            upload_all(
                uploader,
                creds,
                data,
                chunks=cut_after(
                    blocks(data, CHUNK),
                    sent,
                    once=lambda: (
                        sim.chunk_stats()["chunksAccepted"] >= sent
                        and (not lagging or len([r for r in sim.requests if r.path.endswith("/chunks")]) > len(appends))
                    ),
                ),
                concurrency=1,
                listener=saved,
            )
        resume = saved.resume
        assert (resume.appended, resume.sent, resume.appendingTo) == (0, sent, 4 if lagging else None)
        if case == "chunks gone":
            sim.inject("media-append", Fault(status=400))  # as a service that no longer holds them might answer
        before = sim.chunk_stats()
        if case == "chunks gone":
            with pytest.raises(ChunkedUploadStaleError) as stale:
                upload_all(uploader, creds, data, resume=resume)
            assert stale.value.retryable
            return
        heard = Saved()
        media = upload_all(uploader, creds, data, resume=resume, listener=heard)
        reported = heard.sent
        assert sim.uploads[media.id].sha256 == hashlib.sha256(data).hexdigest()
        assert reported[-1] == (7, len(data)) and all(b == min(n * CHUNK, len(data)) for n, b in reported)
        resent = sim.chunk_stats()["chunkBytesReceived"] - before["chunkBytesReceived"]
        assert resent == len(data) - sent * CHUNK  # the accepted chunks were not sent again
        assert len([r for r in sim.requests if r.path == "/media/upload"]) == 1  # the same upload, continued


def test_a_resume_with_every_chunk_appended_creates_the_file_without_reading_the_source(
    sim: AtlassianSimulator, uploader: ChunkedUploader, creds: MediaCredentials
) -> None:
    data = os.urandom(3 * CHUNK + 5)
    saved = Saved()
    sim.inject("media-file-create", Fault(status=503))
    with pytest.raises(AtlassianError):
        upload_all(uploader, creds, data, listener=saved)
    assert saved.resume.appended == 4

    def unreadable() -> Iterator[bytes]:
        raise AssertionError("the source was read")  # S3 would answer 416 to a read from offset = size
        yield b""

    resume = ChunkedUpload(uploadId=saved.resume.uploadId, chunkSize=CHUNK, appended=4)
    media = upload_all(uploader, creds, data, chunks=unreadable(), resume=resume)
    assert sim.uploads[media.id].sha256 == hashlib.sha256(data).hexdigest()


def test_resume_of_a_stale_upload_says_so(
    sim: AtlassianSimulator, uploader: ChunkedUploader, creds: MediaCredentials
) -> None:
    data = os.urandom(4 * CHUNK)
    saved = Saved()
    with pytest.raises(SourceCut):
        upload_all(
            uploader,
            creds,
            data,
            chunks=cut_after(blocks(data, CHUNK), 2),
            concurrency=1,  # cut with the second chunk reported sent, before its batch of two is appended
            listener=saved,
        )
    upload_id = saved.resume.uploadId
    behind = ChunkedUpload(uploadId=upload_id, chunkSize=CHUNK, appended=1)  # the service has none appended, not 1
    with pytest.raises(ChunkedUploadStaleError) as stale:
        upload_all(uploader, creds, data, chunks=blocks(data[CHUNK:], CHUNK), resume=behind)
    assert (stale.value.status, stale.value.retryable) == (409, True)
    sim.expire_chunked_uploads()
    with pytest.raises(ChunkedUploadStaleError) as gone:
        resume = ChunkedUpload(uploadId=upload_id, chunkSize=CHUNK, appended=2)
        upload_all(uploader, creds, data, chunks=blocks(data[2 * CHUNK :], CHUNK), resume=resume)
    assert gone.value.status == 404
    assert sim.chunk_stats()["chunksHeld"] == 0  # an expired upload's chunks are released


class _Tracked(bytes):
    """A chunk that counts how many of its kind are alive (CPython frees it as its last reference goes)."""

    lock = threading.Lock()
    alive = 0
    most = 0

    def __new__(cls, data: bytes) -> _Tracked:
        with cls.lock:
            cls.alive += 1
            cls.most = max(cls.most, cls.alive)
        return super().__new__(cls, data)

    def __del__(self) -> None:
        with _Tracked.lock:
            _Tracked.alive -= 1


class _GatedUploader(ChunkedUploader):
    """Holds the first ``concurrency`` chunk PUTs at a barrier: proof that they run at once."""

    def __init__(self, session: requests.Session, concurrency: int) -> None:
        super().__init__(session, ["127.0.0.1"])
        self.lock = threading.Lock()
        self.active = 0
        self.most_active = 0
        self.pulled = 0  # chunks taken from the source so far
        self.pulled_at_barrier: list[int] = []
        # Run once all of the first window's PUTs are in flight, before any goes on.
        self.barrier = threading.Barrier(
            concurrency, action=lambda: self.pulled_at_barrier.append(self.pulled), timeout=10
        )

    def put_chunk(self, credentials: MediaCredentials, upload_id: str, part_number: int, data: bytes | Chunk) -> str:
        with self.lock:
            self.active += 1
            self.most_active = max(self.most_active, self.active)
        try:
            if part_number <= self.barrier.parties:
                self.barrier.wait()  # every PUT of the first window is in flight together here
            return super().put_chunk(credentials, upload_id, part_number, data)
        finally:
            with self.lock:
                self.active -= 1


def test_chunks_in_flight_and_in_memory_are_bounded_by_concurrency(
    http: requests.Session, sim: AtlassianSimulator, creds: MediaCredentials
) -> None:
    concurrency, count = 3, 24
    gated = _GatedUploader(http, concurrency)
    data = os.urandom(CHUNK)
    _Tracked.alive = _Tracked.most = 0

    def source() -> Iterator[bytes]:
        for _ in range(count):
            gated.pulled += 1
            yield _Tracked(data)  # not bound to a name here: only the uploader holds it

    sim.inject("media-chunk", Fault(delay_seconds=0.01, times=count))  # PUTs slower than the source
    file = ChunkedFile("big.bin", "application/octet-stream", count * CHUNK, source(), CHUNK)
    media = gated.upload(creds, file, concurrency=concurrency)
    assert gated.most_active == concurrency
    # The source was read one chunk ahead of a full window, no further.
    assert len(gated.pulled_at_barrier) == 1 and gated.pulled_at_barrier[0] <= concurrency + 1
    assert _Tracked.most <= concurrency + 1
    assert _Tracked.alive == 0
    assert sim.uploads[media.id].sha256 == hashlib.sha256(data * count).hexdigest()


def test_chunks_keep_flowing_while_an_append_is_in_flight(
    sim: AtlassianSimulator, uploader: ChunkedUploader, creds: MediaCredentials
) -> None:
    """A slow append (half a second) does not stall the pipeline: chunk PUTs start and end while it is in flight."""
    data = os.urandom(16 * CHUNK)
    sim.inject("media-append", Fault(delay_seconds=0.5))
    media = upload_all(uploader, creds, data)
    assert sim.uploads[media.id].sha256 == hashlib.sha256(data).hexdigest()
    first_append = next(r for r in sim.requests if r.path.endswith("/chunks"))
    during = [
        r
        for r in sim.requests
        if r.path.startswith("/media/chunk/") and first_append.started < r.started and r.at < first_append.at
    ]
    assert len(during) >= 3, "no chunk was sent while the first append was in flight"
