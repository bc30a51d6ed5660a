"""A local file as an attachment source (the CLI's ``upload ./path``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import SourceNotFoundError
from .sources import READ_CHUNK_BYTES


@dataclass(frozen=True)
class LocalFile:
    path: Path
    size: int
    content_type: str | None = None
    expected_md5: str | None = None
    verified_checksum: None = None

    @classmethod
    def open(cls, path: str | Path) -> LocalFile:
        path = Path(path)
        if not path.is_file():
            raise SourceNotFoundError(f"{path} is not a readable file", step="read", field="source")
        return cls(path=path, size=path.stat().st_size)

    @property
    def name(self) -> str:
        return self.path.name

    def chunks(self, start: int = 0) -> Iterator[bytes]:
        with self.path.open("rb") as f:
            f.seek(start)
            while chunk := f.read(READ_CHUNK_BYTES):
                yield chunk
