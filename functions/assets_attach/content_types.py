"""The content type an attachment is stored with."""

from __future__ import annotations

import mimetypes
import re

GENERIC_TYPES = frozenset({"", "binary/octet-stream", "application/octet-stream"})
FALLBACK = "application/octet-stream"

# RFC 9110 media type: type "/" subtype, then "; name=value" parameters (value a token or a quoted string),
# all printable ASCII. Anything else cannot go into a multipart header or the link call as it is.
_TCHARS = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_QUOTED = r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\[\x20-\x7e])*"'
_MEDIA_TYPE = re.compile(rf"^{_TCHARS}/{_TCHARS}(?:[ \t]*;[ \t]*{_TCHARS}=(?:{_TCHARS}|{_QUOTED}))*$")


def is_wire_safe(content_type: str) -> bool:
    return bool(_MEDIA_TYPE.match(content_type))


def resolve_content_type(declared: str | None, filename: str) -> str:
    """S3's ``ContentType`` unless missing, generic or not a valid media type, else a guess from the name,
    else octet-stream."""
    declared = (declared or "").strip()
    if declared.split(";", 1)[0].strip().lower() not in GENERIC_TYPES and is_wire_safe(declared):
        return declared
    guessed, _ = mimetypes.guess_type(filename, strict=False)
    return guessed or FALLBACK
