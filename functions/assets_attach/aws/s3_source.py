"""S3 objects as attachment sources: ``HeadObject`` for what they are, a streamed ``GetObject`` for their bytes.

A job pins the object it accepted: by ``VersionId`` where the bucket is versioned, else by ``ETag``
(``If-Match``). Content that changed since then is a ``SourceChangedError``, content deleted since then a
``SourceDeletedError``; neither is ever retried. In a versioned bucket the pinned version outlives a delete,
so ``head_accepted`` also asks whether a delete marker has become the current version.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, FlexibleChecksumError

from ..errors import (
    AttachError,
    BadRequestError,
    IntegrityError,
    SourceAccessError,
    SourceChangedError,
    SourceDeletedError,
    SourceNotFoundError,
    Step,
)
from ..integrity import Check, client_checksum, md5_from_etag
from ..jobs import JobFile
from ..pins import pin_for
from ..sources import READ_CHUNK_BYTES
from .aws_calls import aws_call, error_code

_MISSING = {"404", "NoSuchKey", "NoSuchVersion", "NotFound", "NoSuchBucket"}
_DENIED = {"403", "AccessDenied", "AllAccessDisabled"}
_CHANGED = {"412", "PreconditionFailed"}
# A request S3 refuses as malformed (an over-long key, a bad argument) fails the same way every time.
_MALFORMED = {"400", "InvalidArgument", "InvalidRequest", "KeyTooLongError", "InvalidURI", "InvalidBucketName"}


@dataclass(frozen=True)
class S3Object:
    """One version of one S3 object, as ``HeadObject`` described it."""

    bucket: str
    key: str
    size: int
    content_type: str | None
    etag: str | None
    version_id: str | None
    metadata: dict[str, str]
    server_side_encryption: str | None = None
    checksums: dict[str, str] = field(default_factory=dict)  # algorithm ("crc32", …) → base64 value, as S3 reports
    client: Any = field(default=None, repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1] or self.key

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def expected_md5(self) -> str | None:
        return md5_from_etag(self.etag, self.server_side_encryption)

    @property
    def verified_checksum(self) -> Check | None:
        """The full-object checksum the S3 client verifies while the whole object streams (``chunks()``)."""
        return client_checksum(self.checksums)

    def pin(self) -> dict[str, str]:
        """GetObject/HeadObject arguments that address exactly this content."""
        return pin_for(self.version_id, self.etag)

    def job_file(self, filename: str | None, comment: str) -> JobFile:
        """This content as a job's file, pinned to the version (or ETag) HeadObject described."""
        return JobFile.accepted(
            bucket=self.bucket,
            key=self.key,
            size=self.size,
            version_id=self.version_id,
            etag=self.etag,
            filename=filename,
            comment=comment,
        )

    def chunks(self, start: int = 0) -> Iterator[bytes]:
        """The pinned content from byte ``start`` on, in chunks of READ_CHUNK_BYTES as they arrive. Read whole, its
        full-object checksum is verified as it streams (a range has none to verify)."""
        span = {"Range": f"bytes={start}-"} if start else {}
        refusal = partial(_translate, uri=self.uri, step="s3-read", pinned=True)
        with aws_call(f"cannot read {self.uri}", "s3-read", refusal=refusal, name_error=True):
            body = self.client.get_object(
                Bucket=self.bucket, Key=self.key, ChecksumMode="ENABLED", **self.pin(), **span
            )["Body"]
        yield from self._read(body)

    def _read(self, body: Any) -> Iterator[bytes]:
        try:
            yield from body.iter_chunks(READ_CHUNK_BYTES)
        except FlexibleChecksumError as e:
            raise IntegrityError(
                f"the bytes read from {self.uri} do not match its {self.verified_checksum} checksum", step="s3-read"
            ) from e
        except (BotoCoreError, OSError) as e:
            raise AttachError(f"reading {self.uri} failed ({type(e).__name__})", step="s3-read", retryable=True) from e
        finally:
            body.close()


def _translate(error: ClientError, uri: str, step: Step, *, pinned: bool) -> AttachError:
    code = error_code(error)
    if pinned and code in _MISSING:
        return SourceDeletedError(f"{uri} was deleted after the request was accepted", step=step)
    if code in _CHANGED:
        return SourceChangedError(f"{uri} changed after the request was accepted", step=step)
    if code in _MISSING:
        return SourceNotFoundError(f"{uri} does not exist", step=step, status=404, field="key")
    if code in _DENIED:
        return SourceAccessError(f"no permission to read {uri}", step=step, status=403, field="bucket")
    if code in _MALFORMED:
        return BadRequestError(f"S3 refused the request for {uri[:200]} ({code})", step=step, field="key")
    return AttachError(f"S3 answered {code or 'an error'} for {uri}", step=step, retryable=True)


class S3Source:
    def __init__(self, client: Any) -> None:
        self._client = client

    def head(self, bucket: str, key: str, *, pin: dict[str, str] | None = None) -> S3Object:
        """Describe the object; with ``pin`` (from ``S3Object.pin()``), fail if it is no longer that content."""
        reply = self._head(bucket, key, pin or {})
        full_object = reply.get("ChecksumType", "FULL_OBJECT") == "FULL_OBJECT"
        checksums = {
            name.removeprefix("Checksum").lower(): str(value)
            for name, value in reply.items()
            if name.startswith("Checksum") and name != "ChecksumType" and full_object
        }
        return S3Object(
            bucket=bucket,
            key=key,
            size=int(reply["ContentLength"]),
            content_type=reply.get("ContentType"),
            etag=reply.get("ETag"),
            version_id=reply.get("VersionId"),
            metadata={k.lower(): v for k, v in (reply.get("Metadata") or {}).items()},
            server_side_encryption=reply.get("ServerSideEncryption"),
            checksums=checksums,
            client=self._client,
        )

    def head_accepted(self, bucket: str, key: str, pin: dict[str, str]) -> S3Object:
        """The content a job accepted, unless it was deleted since. A version pin still reads a deleted object,
        so the key's current version is checked too: a delete marker there means deleted, while a newer
        version only supersedes the accepted one, which is still what the job attaches."""
        accepted = self.head(bucket, key, pin=pin)
        if "VersionId" in pin:
            try:
                self._head(bucket, key, {})
            except SourceNotFoundError as e:
                raise SourceDeletedError(
                    f"{accepted.uri} was deleted after the request was accepted", step="s3-head"
                ) from e
        return accepted

    def _head(self, bucket: str, key: str, pin: dict[str, str]) -> dict[str, Any]:
        uri = f"s3://{bucket}/{key}"
        refusal = partial(_translate, uri=uri, step="s3-head", pinned=bool(pin))
        with aws_call(f"cannot reach S3 for {uri}", "s3-head", refusal=refusal, name_error=True):
            reply: dict[str, Any] = self._client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED", **pin)
        return reply
