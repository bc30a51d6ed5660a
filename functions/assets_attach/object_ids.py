"""Assets object ids as rules and users give them: ``1234``, ``"1234"`` or ``"<workspaceId>:1234"``."""

from __future__ import annotations

import re
from collections.abc import Callable

from .errors import BadRequestError

_OBJECT_ID = re.compile(r"^(?:([0-9A-Za-z-]+):)?([1-9][0-9]{0,18})$")
_OBJECT_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]*-[1-9][0-9]*$")


def normalize_object_id(value: object, workspace_id: Callable[[], str], field: str = "objectId") -> str:
    """The numeric id as a string. The workspace prefix that Assets custom fields carry must be the configured
    workspace's (``workspace_id()``, asked only when a prefix is given): another workspace's object id would
    name a different object here."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise BadRequestError("must be a number or a string like '1234' or '<workspaceId>:1234'", field=field)
    match = _OBJECT_ID.match(str(value).strip())
    if not match:
        raise BadRequestError(f"{str(value)[:80]!r} is not an Assets object id", field=field)
    prefix, object_id = match.groups()
    if prefix is not None and prefix != workspace_id():
        raise BadRequestError(
            f"{prefix}:{object_id} belongs to another Assets workspace than the one configured", field=field
        )
    return object_id


def normalize_object_key(value: object, field: str = "objectKey") -> str:
    """An object key such as ``HW-42``."""
    if not isinstance(value, str) or not _OBJECT_KEY.match(value.strip()):
        raise BadRequestError(f"{str(value)[:80]!r} is not an Assets object key like 'HW-42'", field=field)
    return value.strip()
