"""Proof that the bytes sent are the S3 object's: the MD5 where the ETag is one, and the size the media
service stored."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator

from .errors import IntegrityError

_MD5_ETAG = re.compile(r'^"?([0-9a-fA-F]{32})"?$')


def md5_from_etag(etag: str | None, server_side_encryption: str | None = None) -> str | None:
    """The MD5 an ETag stands for: single-part uploads only, and not under SSE-KMS/SSE-C (their ETag is opaque)."""
    if not etag or (server_side_encryption or "").lower() not in ("", "aes256"):
        return None
    match = _MD5_ETAG.match(etag.strip())
    return match.group(1).lower() if match else None


class StreamCheck:
    """Hashes a chunk stream where the source's MD5 is known; ``verify`` then compares. (The byte count is
    enforced by the multipart body, which refuses to send more or fewer bytes than announced.)"""

    def __init__(self, size: int, expected_md5: str | None) -> None:
        self.size = size
        self.expected_md5 = expected_md5
        self._md5: hashlib._Hash | None = None

    def wrap(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        if not self.expected_md5:
            yield from chunks
            return
        self._md5 = hashlib.md5(usedforsecurity=False)
        for chunk in chunks:
            self._md5.update(chunk)
            yield chunk

    def verify(self, reported_size: int | None) -> None:
        """Raise unless the media service and the MD5 agree with the source; nothing is linked otherwise."""
        if reported_size is not None and reported_size != self.size:
            raise IntegrityError(
                f"the media service stored {reported_size} bytes but {self.size} were sent", step="upload"
            )
        if self._md5 is not None and self._md5.hexdigest() != self.expected_md5:
            raise IntegrityError("the bytes sent do not match the S3 object's MD5 (ETag)", step="upload")
