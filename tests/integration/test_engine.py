"""The engine over HTTP: S3 in moto, Atlassian in the simulator, the three steps end to end."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import boto3
import pytest
from botocore.config import Config
from moto.core import DEFAULT_ACCOUNT_ID
from moto.s3.models import s3_backends

from assets_attach.errors import (
    AtlassianAuthError,
    AttachError,
    FileTooLargeError,
    IntegrityError,
    MediaHostNotAllowedError,
    ObjectNotFoundError,
    SourceChangedError,
    SourceNotFoundError,
)
from assets_attach.local_source import LocalFile
from assets_attach.runtime import Runtime, get_runtime
from devstack.atlassian_sim import AtlassianSimulator, Fault
from devstack.stack import LocalStack, patched_environ


def requests_for(sim: AtlassianSimulator, step_path: str) -> list[str]:
    return [r.path for r in sim.requests if step_path in r.path]


def test_attaches_the_exact_bytes_name_size_and_type(stack: LocalStack, runtime: Runtime) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    stack.put("reports/q3.pdf", data, "application/pdf")

    result = runtime.attacher.attach("1234", runtime.s3.head(stack.bucket, "reports/q3.pdf"), comment="from CI")

    [attachment] = stack.sim.attachments("1234")
    assert attachment.filename == "q3.pdf"
    assert attachment.size == len(data)
    assert attachment.sha256 == hashlib.sha256(data).hexdigest()
    assert attachment.mime_type == "application/pdf"
    assert attachment.comment == "from CI"
    assert result.attachment_id == str(attachment.id)
    assert result.media_id == attachment.media_id
    assert (result.size, result.filename, result.content_type) == (len(data), "q3.pdf", "application/pdf")


def test_upload_is_one_request_with_exact_length_and_no_chunking(stack: LocalStack, runtime: Runtime) -> None:
    data = os.urandom(5 * 1024 * 1024)
    stack.put("big.bin", data)

    result = runtime.attacher.attach("1234", runtime.s3.head(stack.bucket, "big.bin"))

    upload = stack.sim.uploads[result.media_id]
    headers = {k.lower(): v for k, v in upload.headers.items()}
    assert "transfer-encoding" not in headers
    assert int(headers["content-length"]) > len(data)
    assert headers["x-client-id"]
    assert len(requests_for(stack.sim, "/media/")) == 1


@pytest.mark.parametrize(
    "name",
    ["Prüfbericht — 検査 ✓.pdf", "naïve résumé.docx", 'quote"and\\slash.txt', "emoji 📎 file.png", "a+b%20c.txt"],
)
def test_unicode_and_awkward_names_survive(stack: LocalStack, runtime: Runtime, name: str) -> None:
    stack.put(f"in/{name}", b"hello")

    result = runtime.attacher.attach("1234", runtime.s3.head(stack.bucket, f"in/{name}"))

    [attachment] = stack.sim.attachments("1234")
    assert attachment.filename == name
    upload = stack.sim.uploads[result.media_id]
    assert upload.name == name
    assert upload.part_filename_star is not None
    assert unquote(upload.part_filename_star.removeprefix("UTF-8''")) == name
    assert upload.part_filename is not None and upload.part_filename.isascii()


def test_filename_override(stack: LocalStack, runtime: Runtime) -> None:
    stack.put("x/scan-0001.pdf", b"%PDF-1.7")
    runtime.attacher.attach("1234", runtime.s3.head(stack.bucket, "x/scan-0001.pdf"), filename="Invoice März.pdf")
    assert [a.filename for a in stack.sim.attachments("1234")] == ["Invoice März.pdf"]


@pytest.mark.parametrize(
    ("declared", "key", "expected"),
    [
        ("application/pdf", "file.bin", "application/pdf"),
        ("image/png; charset=binary", "file.bin", "image/png; charset=binary"),
        ("binary/octet-stream", "report.pdf", "application/pdf"),
        ("application/octet-stream", "photo.JPG", "image/jpeg"),
        (None, "sheet.csv", "text/csv"),
        (None, "no-extension", "application/octet-stream"),
    ],
)
def test_content_type(stack: LocalStack, runtime: Runtime, declared: str | None, key: str, expected: str) -> None:
    stack.put(key, b"1,2,3\n", declared)
    result = runtime.attacher.attach("1234", runtime.s3.head(stack.bucket, key))
    assert result.content_type == expected
    assert stack.sim.attachments("1234")[0].mime_type == expected
    assert stack.sim.uploads[result.media_id].content_type == expected


def test_size_limit_is_checked_before_anything_is_sent(stack: LocalStack) -> None:
    stack.put("eleven.txt", b"x" * 11)
    with patched_environ({"MAX_FILE_SIZE_BYTES": "10"}):
        runtime = get_runtime()
        with pytest.raises(FileTooLargeError) as caught:
            runtime.attacher.attach("1234", runtime.s3.head(stack.bucket, "eleven.txt"))
    assert caught.value.status == 413
    assert stack.sim.requests == []


def test_missing_s3_object(stack: LocalStack, runtime: Runtime) -> None:
    with pytest.raises(SourceNotFoundError) as caught:
        runtime.s3.head(stack.bucket, "nope.pdf")
    assert caught.value.field == "key"


def test_pinned_object_that_changed_fails_without_retry(stack: LocalStack, runtime: Runtime) -> None:
    stack.put("doc.txt", b"version one")
    accepted = runtime.s3.head(stack.bucket, "doc.txt")
    stack.put("doc.txt", b"version two")

    # Versioned bucket: the accepted version is still what gets attached.
    runtime.attacher.attach("1234", runtime.s3.head(stack.bucket, "doc.txt", pin=accepted.pin()))
    assert stack.sim.attachments("1234")[0].sha256 == hashlib.sha256(b"version one").hexdigest()

    # Unversioned content pinned by ETag: a change is reported, not retried.
    by_etag = dataclasses.replace(accepted, version_id=None)
    with pytest.raises(SourceChangedError) as caught:
        runtime.s3.head(stack.bucket, "doc.txt", pin=by_etag.pin())
    assert not caught.value.retryable
    with pytest.raises(SourceChangedError):
        runtime.attacher.attach("1234", by_etag)
    assert len(stack.sim.attachments("1234")) == 1


def test_wrong_api_token_is_an_auth_error_after_one_refetch(stack: LocalStack, runtime: Runtime) -> None:
    stack.put_secret(apiToken="not-the-token")
    stack.put("a.txt", b"a")
    with pytest.raises(AtlassianAuthError) as caught:
        runtime.attacher.attach("1234", runtime.s3.head(stack.bucket, "a.txt"))
    assert caught.value.status == 401
    assert not caught.value.retryable
    assert len(requests_for(stack.sim, "/credentials")) == 2
    assert "not-the-token" not in str(caught.value)


def test_rotated_secret_is_picked_up_on_401(stack: LocalStack, runtime: Runtime) -> None:
    stack.put("a.txt", b"a")
    runtime.attacher.attach("1234", runtime.s3.head(stack.bucket, "a.txt"))  # caches the secret

    stack.sim.set_api_token("rotated-token")
    stack.put_secret(apiToken="rotated-token")
    runtime.attacher.attach("1234", runtime.s3.head(stack.bucket, "a.txt"))

    assert len(stack.sim.attachments("1234")) == 2


def test_workspace_discovered_once_from_site_url(stack: LocalStack, runtime: Runtime) -> None:
    stack.put_secret(workspaceId=None, siteUrl=stack.sim.base_url)
    stack.put("a.txt", b"a")
    for _ in range(2):
        runtime.attacher.attach("1234", runtime.s3.head(stack.bucket, "a.txt"))
    assert len(stack.sim.attachments("1234")) == 2
    assert len(requests_for(stack.sim, "/rest/servicedeskapi/assets/workspace")) == 1


def test_media_url_outside_the_allowed_hosts_never_gets_the_token(stack: LocalStack) -> None:
    stack.put("a.txt", b"a")
    with patched_environ({"MEDIA_ALLOWED_HOSTS": "api.media.atlassian.com,*.atlassian.com"}):
        runtime = get_runtime()
        with pytest.raises(MediaHostNotAllowedError):
            runtime.attacher.attach("1234", runtime.s3.head(stack.bucket, "a.txt"))
    assert requests_for(stack.sim, "/media/") == []


def test_unknown_object(stack: LocalStack, runtime: Runtime) -> None:
    stack.put("a.txt", b"a")
    with pytest.raises(ObjectNotFoundError) as caught:
        runtime.attacher.attach("999", runtime.s3.head(stack.bucket, "a.txt"))
    assert caught.value.field == "objectId"


def test_object_key_resolved_through_aql(stack: LocalStack, runtime: Runtime) -> None:
    assert runtime.assets.find_object_id("HW-42") == "1234"
    with pytest.raises(ObjectNotFoundError):
        runtime.assets.find_object_id("HW-404")


def test_md5_mismatch_links_nothing(stack: LocalStack, runtime: Runtime, tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"content")
    lying = dataclasses.replace(LocalFile.open(path), expected_md5="0" * 32)
    with pytest.raises(IntegrityError):
        runtime.attacher.attach("1234", lying)
    assert stack.sim.attachments("1234") == []
    assert not any(r.method == "POST" and r.path.endswith("/attachments/object/1234") for r in stack.sim.requests)


def stored_key(stack: LocalStack, key: str) -> Any:
    """The object as the moto server stores it (this process runs it): for corrupting what S3 holds."""
    return s3_backends[DEFAULT_ACCOUNT_ID]["aws"].buckets[stack.bucket].keys[key]


def test_an_s3_full_object_checksum_is_the_check(stack: LocalStack, runtime: Runtime) -> None:
    stack.put("sums/crc.bin", os.urandom(2 * 1024 * 1024))  # boto3 stores a CRC32 by default, as S3 does a CRC64NVME

    result = runtime.attacher.attach("1234", runtime.s3.head(stack.bucket, "sums/crc.bin"))

    assert result.check == "crc32"


def test_a_checksum_mismatch_links_nothing(stack: LocalStack, runtime: Runtime) -> None:
    stack.put("sums/rotten.bin", os.urandom(1024 * 1024))
    source = runtime.s3.head(stack.bucket, "sums/rotten.bin")
    stored_key(stack, "sums/rotten.bin").checksum_value = "AAAAAA=="  # S3 now serves bytes that fail its checksum

    with pytest.raises(IntegrityError, match="crc32"):
        runtime.attacher.attach("1234", source)
    assert stack.sim.attachments("1234") == []


def test_without_a_checksum_the_etag_md5_is_checked_and_without_both_the_size(
    stack: LocalStack, runtime: Runtime
) -> None:
    plain = boto3.client("s3", config=Config(request_checksum_calculation="when_required"))
    plain.put_object(Bucket=stack.bucket, Key="old/single.bin", Body=b"an object from before checksums")
    parts = plain.create_multipart_upload(Bucket=stack.bucket, Key="old/multi.bin")["UploadId"]
    etags = [
        plain.upload_part(Bucket=stack.bucket, Key="old/multi.bin", UploadId=parts, PartNumber=n, Body=body)["ETag"]
        for n, body in ((1, os.urandom(5 * 1024 * 1024)), (2, b"tail"))
    ]
    plain.complete_multipart_upload(
        Bucket=stack.bucket,
        Key="old/multi.bin",
        UploadId=parts,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]},
    )

    single = runtime.attacher.attach("1234", runtime.s3.head(stack.bucket, "old/single.bin"))
    multi = runtime.attacher.attach("1234", runtime.s3.head(stack.bucket, "old/multi.bin"))

    assert (single.check, multi.check) == ("md5", "size")


def test_source_shorter_than_announced_links_nothing(stack: LocalStack, runtime: Runtime, tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"content")
    short = dataclasses.replace(LocalFile.open(path), size=100)
    with pytest.raises(IntegrityError):
        runtime.attacher.attach("1234", short)
    assert stack.sim.attachments("1234") == []


def test_expired_media_token_is_replaced_once(stack: LocalStack, runtime: Runtime) -> None:
    stack.put("a.txt", b"a")
    stack.sim.inject("upload", Fault(status=401))
    runtime.attacher.attach("1234", runtime.s3.head(stack.bucket, "a.txt"))
    assert len(stack.sim.attachments("1234")) == 1
    assert len(requests_for(stack.sim, "/credentials")) == 2


def test_upload_path_falls_back_and_is_remembered(moto_url: str) -> None:
    with AtlassianSimulator(upload_path="/file/binary") as sim:
        sim.add_object("1234")
        stack = LocalStack(moto_url, sim, bucket="fallback-bucket", secret_id="fallback-secret").seed()
        with patched_environ(stack.env()):
            runtime = get_runtime()
            stack.put("a.txt", b"a")
            for _ in range(2):
                runtime.attacher.attach("1234", runtime.s3.head(stack.bucket, "a.txt"))
    paths = [r.path for r in sim.requests if r.path.startswith("/media/")]
    assert paths == ["/media/file", "/media/file/binary", "/media/file/binary"]
    assert runtime.media.upload_path == "/file/binary"
    assert len(sim.attachments("1234")) == 2


def test_retryable_and_permanent_atlassian_errors(stack: LocalStack, runtime: Runtime) -> None:
    stack.put("a.txt", b"a")
    stack.sim.inject("link", Fault(status=503, retry_after=30))
    with pytest.raises(AttachError) as caught:
        runtime.attacher.attach("1234", runtime.s3.head(stack.bucket, "a.txt"))
    err = caught.value
    assert err.retryable is True
    assert err.retry_after == 30
    assert err.step == "link"

    stack.sim.inject("credentials", Fault(status=403))
    with pytest.raises(AtlassianAuthError) as denied:
        runtime.attacher.attach("1234", runtime.s3.head(stack.bucket, "a.txt"))
    assert not denied.value.retryable


def test_dropped_upload_connection_is_retryable(stack: LocalStack, runtime: Runtime) -> None:
    stack.put("a.bin", os.urandom(4 * 1024 * 1024))
    stack.sim.inject("upload", Fault(drop_after_bytes=1024 * 1024))
    with pytest.raises(AttachError) as caught:
        runtime.attacher.attach("1234", runtime.s3.head(stack.bucket, "a.bin"))
    assert caught.value.retryable is True
    assert caught.value.step == "upload"
    assert stack.sim.attachments("1234") == []
