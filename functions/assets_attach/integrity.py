"""Proof that the bytes sent are the source's, checked the cheapest way the source allows.

1. A full-object checksum that S3 stores (CRC64NVME by default for new objects, CRC32 from recent SDKs, CRC32C or
   SHA where the uploader chose one): botocore verifies it while the bytes stream (``ChecksumMode=ENABLED``), in
   C for CRC32 and, with the CRT installed, CRC32C and CRC64NVME. Composite (multipart) checksums cannot be.
2. Else the MD5 that a single-part, non-KMS ETag stands for: computed here, on a thread of its own, so that the
   thread sending the bytes does not pay for it (hashlib releases the GIL on large buffers).
3. Else the byte count alone. The byte count and the size the media service reports are checked in every case.

``Check`` names which one was made; the job record keeps it.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Literal

from botocore.compat import HAS_CRT

from .errors import IntegrityError

Check = Literal["crc64nvme", "crc32c", "crc32", "sha256", "sha1", "md5", "size"]
_MD5_ETAG = re.compile(r'^"?([0-9a-fA-F]{32})"?$')
# Full-object checksums botocore can verify here, best first (CRC32C and CRC64NVME need the CRT).
CLIENT_CHECKSUMS: tuple[Check, ...] = (("crc64nvme", "crc32c") if HAS_CRT else ()) + ("crc32", "sha256", "sha1")
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

    def verify(self, reported_size: int | None) -> None:
        """Raise unless the media service and the MD5 agree with the source; nothing is linked otherwise."""
        if reported_size is not None and reported_size != self.size:
            raise IntegrityError(
                f"the media service stored {reported_size} bytes but {self.size} were sent", step="upload"
            )
        if self.expected_md5 and (self._digest is None or self._digest.result() != self.expected_md5):
            raise IntegrityError("the bytes sent do not match the S3 object's MD5 (ETag)", step="upload")
