"""Attachment names: what Assets may be given as a file's name.

A name with a control character (CR/LF among them) or a path separator (``/``, ``\\``) would be stored
verbatim and could break the Assets UI or a later download. The webhook refuses such a name (the rule author
can fix it); a name that comes from an S3 key or metadata has nobody to answer, so it is repaired instead.
"""

from __future__ import annotations

import re

from .errors import BadRequestError

_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f/\\]")
REPLACEMENT = "_"


def check_filename(name: str, field: str) -> str:
    """``name`` if it may be stored as it is; else a 400 naming ``field``."""
    bad = _UNSAFE.search(name)
    if bad:
        raise BadRequestError(
            f"must not contain control characters or path separators (found {bad.group()!r})", field=field
        )
    return name


def repair_filename(name: str) -> str:
    """``name`` with every control character and path separator replaced by ``_``."""
    return _UNSAFE.sub(REPLACEMENT, name)
