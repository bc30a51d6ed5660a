"""Proof that the bytes sent are the source's, checked the cheapest way the source allows.

1. A full-object checksum that S3 stores (CRC64NVME by default for new objects, CRC32 from recent SDKs, CRC32C or
   SHA where the uploader chose one): botocore verifies it while the bytes stream (``ChecksumMode=ENABLED``), in
   C for CRC32 and SHA-1/256/512 and, with the CRT installed, CRC32C and (from awscrt 0.23.4 on) CRC64NVME.
   Which ones botocore verifies is read from botocore's own table, so its rules (that CRT version among them)
   hold here by construction. Composite (multipart) checksums cannot be verified.
2. Else the MD5 that a single-part, non-KMS ETag stands for: computed here, on a thread of its own, so that the
   thread sending the bytes does not pay for it (hashlib releases the GIL on large buffers).
3. Else the byte count alone. The byte count and the size the media service stored are checked in every case.

``Check`` names which one was made; the job record keeps it.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Literal

from botocore import httpchecksum

from .errors import IntegrityError

Check = Literal["crc64nvme", "crc32c", "crc32", "sha512", "sha256", "sha1", "md5", "size"]
_MD5_ETAG = re.compile(r'^"?([0-9a-fA-F]{32})"?$')
_PREFERRED: tuple[Check, ...] = ("crc64nvme", "crc32c", "crc32", "sha512", "sha256", "sha1")  # cheapest first
# What botocore verifies while streaming here: its own table of checksum classes (CRC32C and CRC64NVME appear only
# with a CRT that implements them, CRC64NVME from awscrt 0.23.4; SHA-512 in recent botocore). A botocore
# without that table verifies the three it always could.
_BOTOCORE_VERIFIES = frozenset(getattr(httpchecksum, "_SUPPORTED_CHECKSUM_ALGORITHMS", ("crc32", "sha1", "sha256")))
CLIENT_CHECKSUMS: tuple[Check, ...] = tuple(a for a in _PREFERRED if a in _BOTOCORE_VERIFIES)
MAX_CHUNKS_AWAITING_HASH = 4  # chunks held for the MD5 thread, at most


def md5_from_etag(etag: str | None, server_side_encryption: str | None = None) -> str | None:
    """The MD5 an ETag stands for: single-part uploads only, and not under SSE-KMS/SSE-C (their ETag is opaque)."""
    if not etag or (server_side_encryption or "").lower() not in ("", "aes256"):
        return None
    match = _MD5_ETAG.match(etag.strip())
    return match.group(1).lower() if match else None


def client_checksum(checksums: dict[str, str]) -> Check | None:
    """The full-object checksum (of those S3 reported: algorithm → base64 value) botocore will verify, if any."""
    return next((a for a in CLIENT_CHECKSUMS if "-" not in checksums.get(a, "-")), None)


class StreamCheck:
    """Checks a chunk stream against the source: ``wrap`` the chunks, then ``verify`` what the media service
    reports. ``verified_by_source``: a checksum the source verifies itself as it streams (nothing to do here);
    else ``expected_md5`` is computed on a thread of its own. (The byte count is enforced by the upload, which
    refuses to send more or fewer bytes than announced.)"""

    def __init__(self, size: int, expected_md5: str | None, verified_by_source: Check | None = None) -> None:
        self.size = size
        self.check: Check = verified_by_source or ("md5" if expected_md5 else "size")
        self.expected_md5 = expected_md5 if self.check == "md5" else None
        self._digest: Future[str] | None = None

    def wrap(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        if not self.expected_md5:
            yield from chunks
            return
        md5 = hashlib.md5(usedforsecurity=False)
        room = threading.BoundedSemaphore(MAX_CHUNKS_AWAITING_HASH)

        def update(chunk: bytes) -> None:
            try:
                md5.update(chunk)
            finally:
                room.release()

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="md5") as hasher:  # one thread: in order
            for chunk in chunks:
                room.acquire()
                hasher.submit(update, chunk)
                yield chunk
            self._digest = hasher.submit(md5.hexdigest)

    def verify(self) -> None:
        """Raise unless the bytes sent have the source's MD5 (where one is checked); nothing is linked otherwise.
        (The size the media service stored is checked by ``media_api.confirmed_size``.)"""
        if self.expected_md5 and (self._digest is None or self._digest.result() != self.expected_md5):
            raise IntegrityError("the bytes sent do not match the S3 object's MD5 (ETag)", step="upload")
