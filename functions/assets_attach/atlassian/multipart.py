"""Request bodies that stream a file with an exact length: the raw bytes, or a one-part ``multipart/form-data``.

``requests`` sends an iterable that has ``__len__`` with a ``Content-Length`` header instead of chunked
transfer encoding, and urllib3 writes each chunk as it comes: the file is never held whole in memory.
"""

from __future__ import annotations

import secrets
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from urllib.parse import quote

from ..errors import IntegrityError


def ascii_fallback(filename: str) -> str:
    """A plain-ASCII stand-in for clients that ignore ``filename*`` (RFC 7578 section 4.2)."""
    decomposed = unicodedata.normalize("NFKD", filename)
    plain = "".join(c for c in decomposed if 32 <= ord(c) < 127 and c not in '"\\')
    return plain.strip() or "file"


def content_disposition(filename: str) -> str:
    return (
        f'form-data; name="file"; filename="{ascii_fallback(filename)}"; filename*=UTF-8\'\'{quote(filename, safe="")}'
    )


def _header_value(value: str) -> str:
    return "".join(c for c in value if c >= " " and c != "\x7f")


class StreamedBody:
    """The file's bytes as they come from ``open_chunks()``, exactly ``size`` of them (more or fewer is an
    IntegrityError while sending, so a short or long source never passes for the file)."""

    def __init__(self, open_chunks: Callable[[], Iterable[bytes]], size: int) -> None:
        self._open_chunks = open_chunks
        self._size = size

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[bytes]:
        sent = 0
        for chunk in self._open_chunks():
            sent += len(chunk)
            if sent > self._size:
                raise IntegrityError(f"the source gave more than its {self._size} bytes", step="upload")
            yield chunk
        if sent != self._size:
            raise IntegrityError(f"the source gave {sent} of its {self._size} bytes", step="upload")


class MultipartBody:
    """Iterate to get the body; ``len()`` is its exact size; ``content_type`` carries the boundary."""

    def __init__(self, open_chunks: Callable[[], Iterable[bytes]], size: int, filename: str, content_type: str):
        self._content = StreamedBody(open_chunks, size)
        self.boundary = secrets.token_hex(16)
        self._head = (
            f"--{self.boundary}\r\n"
            f"Content-Disposition: {content_disposition(filename)}\r\n"
            f"Content-Type: {_header_value(content_type)}\r\n\r\n"
        ).encode("ascii")
        self._tail = f"\r\n--{self.boundary}--\r\n".encode("ascii")

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def __len__(self) -> int:
        return len(self._head) + len(self._content) + len(self._tail)

    def __iter__(self) -> Iterator[bytes]:
        yield self._head
        yield from self._content
        yield self._tail
