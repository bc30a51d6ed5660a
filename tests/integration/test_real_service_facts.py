"""The engine against the simulator in the modes that play what public sources say the real services do
(``../shared/ATLASSIAN_FACTS.md``, ``../shared/MEDIA_CHUNKED.md``): each test names the fact it relies on."""

from __future__ import annotations

import hashlib
import os

import pytest
import requests

from assets_attach.errors import IntegrityError, ObjectNotFoundError
from assets_attach.runtime import Runtime
from assets_attach.settings import Settings
from devstack.atlassian_sim import Fault
from devstack.stack import LocalStack, patched_environ

MiB = 1 << 20


def runtime_with(**settings: str) -> Runtime:
    with patched_environ(settings):
        return Runtime(Settings.from_env())


def linked(stack: LocalStack, object_id: str = "1234") -> list[tuple[int, str]]:
    return [(a.size, a.sha256) for a in stack.sim.attachments(object_id)]


# --------------------------------------------------------------------------------------------- Jira downloads


@pytest.mark.parametrize("redirected", [False, True], ids=["content", "media redirect"])
def test_jira_attachment_content_is_asked_for_with_any_type_as_jira_cloud_answers_406_to_json(
    stack: LocalStack, redirected: bool
) -> None:
    """ATLASSIAN_FACTS.md, "Jira REST v3": python jira client commit 4549cd5; JiraPS issue 459."""
    data = os.urandom(200_000)
    attachment_id = stack.sim.add_jira_attachment("SUP-1", "scan.pdf", data, "application/pdf")
    stack.sim.always_redirect_content = redirected
    as_json = requests.get(
        f"{stack.sim.base_url}/rest/api/3/attachment/content/{attachment_id}?redirect=false",
        auth=(stack.sim.email, stack.sim.api_token),
        headers={"Accept": "application/json"},
        timeout=10,
    )
    assert as_json.status_code == 406  # the simulator is as strict as the site (the redirect followed)
    runtime = runtime_with(MEDIA_ALLOWED_HOSTS=f"127.0.0.1,{stack.sim.media_download_host}")
    before = len(stack.sim.requests)

    found = runtime.jira.attachment(attachment_id)
    source = runtime.jira.source(found.id, name=found.filename, size=found.size, content_type=found.mime_type)
    runtime.attacher.attach("1234", source)

    assert linked(stack) == [(len(data), hashlib.sha256(data).hexdigest())]
    reads = [r for r in stack.sim.requests[before:] if "/attachment/content/" in r.path or r.path.endswith("/binary")]
    assert len(reads) == (2 if redirected else 1)
    assert all(r.headers.get("Accept") == "*/*" for r in reads)


# --------------------------------------------------------------------------------------------- the stored size


def test_an_upload_reply_without_a_size_is_checked_with_get_file_before_the_link(
    stack: LocalStack, runtime: Runtime
) -> None:
    """ATLASSIAN_FACTS.md, "Media service (single upload)": Atlassian's createFile answers {id, createdAt}."""
    stack.sim.upload_reply = "createFile"
    data = os.urandom(300_000)
    stack.put("in/a.bin", data)

    result = runtime.attacher.attach("1234", runtime.s3.head(stack.bucket, "in/a.bin"))

    assert linked(stack) == [(len(data), hashlib.sha256(data).hexdigest())]
    [info] = [r for r in stack.sim.requests if r.method == "GET" and r.path == f"/media/file/{result.media_id}"]
    assert info.status == 200 and info.headers["Authorization"] == "Bearer"  # with the media token, recorded redacted


@pytest.mark.parametrize(
    ("reply", "status", "problem"),
    [
        ("createFile-empty", "succeeded", "stored 0 bytes but 300000 were sent"),
        ("createFile", "failed", "failed to process"),
        ("full", "failed", None),  # a reply with the right size is trusted: no GET, linked
    ],
)
def test_a_file_the_service_did_not_store_whole_is_never_linked(
    stack: LocalStack, runtime: Runtime, reply: str, status: str, problem: str | None
) -> None:
    stack.sim.upload_reply = reply  # type: ignore[assignment]
    stack.sim.processing_status = status  # type: ignore[assignment]
    stack.put("in/a.bin", os.urandom(300_000))
    source = runtime.s3.head(stack.bucket, "in/a.bin")
    if problem is None:
        runtime.attacher.attach("1234", source)
        assert len(linked(stack)) == 1
        return
    with pytest.raises(IntegrityError, match=problem) as failed:
        runtime.attacher.attach("1234", source)
    assert not failed.value.retryable
    assert linked(stack) == []


# --------------------------------------------------------------------------------------------- /file/binary


@pytest.mark.parametrize("configured_path", ["/file/binary", "/file"])
def test_file_binary_takes_the_raw_bytes_with_the_files_type(stack: LocalStack, configured_path: str) -> None:
    """ATLASSIAN_FACTS.md: /file/binary takes the raw body (Atlassian's createFileFromBinary; multipart there would
    be stored with its envelope). Configured as /file, the engine finds /file/binary on a 404 and sends raw bytes."""
    stack.sim.upload_path = "/file/binary"
    runtime = runtime_with(MEDIA_UPLOAD_PATH=configured_path, MEDIA_UPLOAD_MODE="single")
    data = os.urandom(400_000)
    stack.put("in/report.pdf", data, "application/pdf")

    result = runtime.attacher.attach("1234", runtime.s3.head(stack.bucket, "in/report.pdf"))

    assert linked(stack) == [(len(data), hashlib.sha256(data).hexdigest())]
    stored = stack.sim.uploads[result.media_id]
    headers = {k.lower(): v for k, v in stored.headers.items()}
    assert (headers["content-type"], int(headers["content-length"])) == ("application/pdf", len(data))
    assert stored.name == "report.pdf"


# --------------------------------------------------------------------------------------------- chunked refusals


@pytest.mark.parametrize(
    ("step", "fault"),
    [
        ("media-upload-create", Fault(status=405, times=9)),
        ("media-chunk", Fault(status=403, times=9)),
        ("media-append", Fault(status=404, times=9)),
        ("media-file-create", Fault(status=403, times=9)),
        ("media-chunk", Fault(status=401, times=9)),  # a 401 that a fresh token does not cure
    ],
    ids=["create 405", "chunk 403", "append 404", "create-file 403", "chunk 401 twice"],
)
def test_a_chunked_upload_refused_at_any_step_falls_back_to_the_single_upload_and_remembers(
    stack: LocalStack, step: str, fault: Fault
) -> None:
    """ATLASSIAN_FACTS.md, "Media service (chunked upload)": nobody has shown that the per-object JWT covers the
    chunk, append and create-file calls."""
    runtime = runtime_with(MEDIA_UPLOAD_MODE="auto", CHUNKED_MIN_BYTES=str(MiB))
    stack.sim.inject(step, fault)
    first, second = os.urandom(6 * MiB), os.urandom(2 * MiB)
    stack.put("in/first.bin", first)
    stack.put("in/second.bin", second)

    runtime.attacher.attach("1234", runtime.s3.head(stack.bucket, "in/first.bin"))
    creates = len([r for r in stack.sim.requests if r.path == "/media/upload"])
    runtime.attacher.attach("1234", runtime.s3.head(stack.bucket, "in/second.bin"))

    assert sorted(linked(stack)) == sorted(
        [(len(first), hashlib.sha256(first).hexdigest()), (len(second), hashlib.sha256(second).hexdigest())]
    )
    assert [u.chunked_upload_id for u in stack.sim.uploads.values()] == [None, None]  # both in one POST
    assert len([r for r in stack.sim.requests if r.path == "/media/upload"]) == creates  # remembered: not asked again


# --------------------------------------------------------------------------------------------- Assets errors, AQL, 429


def test_assets_errors_in_the_singular_form_reach_the_user(stack: LocalStack, runtime: Runtime) -> None:
    """ATLASSIAN_FACTS.md, "Assets (JSM) REST": 404 {"errorMessage": "TCS 404"} from the credentials call."""
    stack.put("in/a.bin", b"abc")
    with pytest.raises(ObjectNotFoundError, match="TCS 404"):
        runtime.attacher.attach("999", runtime.s3.head(stack.bucket, "in/a.bin"))


def test_a_key_lookup_asks_aql_for_no_attributes(stack: LocalStack, runtime: Runtime) -> None:
    """ATLASSIAN_FACTS.md, "Assets (JSM) REST": includeAttributes (default true) set false for a key lookup."""
    assert runtime.assets.find_object_id("hw-42") == "1234"
    [aql] = [r for r in stack.sim.requests if r.path.endswith("/object/aql")]
    assert aql.query["includeAttributes"] == "false"


def test_a_429_without_retry_after_is_retried_after_a_few_seconds_not_at_once(
    stack: LocalStack, runtime: Runtime
) -> None:
    """ATLASSIAN_FACTS.md, "Jira REST v3" (Rate limiting): back off from a few seconds with jitter (x0.7-1.3)."""
    stack.sim.inject("credentials", Fault(status=429))
    stack.put("in/a.bin", b"abc")

    runtime.attacher.attach("1234", runtime.s3.head(stack.bucket, "in/a.bin"))

    first, second = [r.at for r in stack.sim.requests if r.path.endswith("/credentials")]
    assert second - first >= 2.0 * 0.7  # a lower bound: a loaded machine only waits longer


@pytest.mark.parametrize("align", [1, 3 * MiB], ids=["as asked", "from a block boundary before"])
def test_a_resumed_jira_read_starts_where_the_content_range_says(
    stack: LocalStack, runtime: Runtime, align: int
) -> None:
    """Issue 18 §11: a 206 is trusted only as far as its Content-Range says it starts at the offset asked for."""
    data = os.urandom(8 * MiB)
    attachment_id = stack.sim.add_jira_attachment("SUP-9", "scan.tif", data, "image/tiff")
    stack.sim.range_align = align
    source = runtime.jira.source(attachment_id, name="scan.tif", size=len(data), content_type="image/tiff")

    assert b"".join(source.chunks(5 * MiB)) == data[5 * MiB :]
