"""The content type an attachment is stored with."""

from __future__ import annotations

import mimetypes

GENERIC_TYPES = frozenset({"", "binary/octet-stream", "application/octet-stream"})
FALLBACK = "application/octet-stream"


def resolve_content_type(declared: str | None, filename: str) -> str:
    """S3's ``ContentType`` unless missing or generic, else a guess from the name, else octet-stream."""
    declared = (declared or "").strip()
    if declared.split(";", 1)[0].strip().lower() not in GENERIC_TYPES:
        return declared
    guessed, _ = mimetypes.guess_type(filename, strict=False)
    return guessed or FALLBACK
